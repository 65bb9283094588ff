"""``vapi-chargeback diff``: what changed between two published months, or two versions.

Both sides are read through ``published.read_published_file``: the statement CSV held to its
manifest's sha256, so a diff never compares a damaged or half-replaced set. ``2026-10`` is
the month's current set; ``2026-10@v1`` a version of it, the current one when its manifest
says so, else the one a restatement kept under ``_versions/2026-10/v1/``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from vapi_chargeback.cli.common import config_arg, table
from vapi_chargeback.cli.status import output_url

SIDE = re.compile(r"^(?P<month>\d{4}-(0[1-9]|1[0-2]))(@v(?P<version>[1-9]\d*))?$")
MONEY_COLUMN = re.compile(r"^([a-z0-9_]+_usd|cost_[a-z]{3})$")
"""``cost_usd``, each ``<component>_usd``, ``other_usd`` and ``cost_<currency>``."""
ZERO = Decimal("0.00")
DEFAULT_TOP = 10
TOTAL = "TOTAL"


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    diff = commands.add_parser(
        "diff",
        parents=[common],
        help="compare two published months (or two versions of one): every money column",
        description=(
            "Compare the statement CSVs of two published sets, each verified against its"
            " manifest: per cost center and for the assistants whose cost changed most, the"
            " change (B - A) in every money column the two share (cost_usd, each component,"
            " other_usd, cost_<currency>). A side is a month (2026-10: its current set) or a"
            " version of it (2026-10@v1: the version a restatement kept, or the current set"
            " if that is the version)."
        ),
        epilog=(
            "Exit status: 0 compared, 1 a side is not published or does not verify, 2 a wrong"
            " command line. Examples: vapi-chargeback diff 2026-09 2026-10;"
            " vapi-chargeback diff 2026-10@v1 2026-10 --json"
        ),
    )
    diff.add_argument("a", type=_side, metavar="A", help="the earlier side: YYYY-MM or YYYY-MM@vN")
    diff.add_argument("b", type=_side, metavar="B", help="the later side: YYYY-MM or YYYY-MM@vN")
    diff.add_argument(
        "--output",
        metavar="URL",
        help="the output holding both, a folder path or storage URL (file://…, s3://…)"
        " (default: the config's output, else ./output)",
    )
    config_arg(diff, "chargeback.yaml whose output to read when --output is not given")
    diff.add_argument(
        "--top",
        type=_count,
        default=DEFAULT_TOP,
        metavar="N",
        help="how many assistants to show, largest change of cost_usd first; 0 for none"
        f" (default: {DEFAULT_TOP})",
    )
    diff.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (each side's and the change of every money column)"
        " instead of tables",
    )
    diff.set_defaults(handler=_diff)


@dataclass(frozen=True)
class Side:
    month: str
    version: int | None

    def __str__(self) -> str:
        return self.month if self.version is None else f"{self.month}@v{self.version}"


def _side(text: str) -> Side:
    match = SIDE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a published month; use YYYY-MM or YYYY-MM@vN, e.g. 2026-10@v1"
        )
    version = match.group("version")
    return Side(match.group("month"), int(version) if version else None)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return int(text)


@dataclass(frozen=True)
class Statement:
    """A statement CSV: its header (a month without lines still has one) and its lines."""

    columns: list[str]
    lines: list[dict[str, str]]


def read_statement(url: str, side: Side) -> Statement:
    """The statement CSV of ``side``, verified against its manifest."""
    from vapi_chargeback.published import read_published, read_published_file

    name = f"chargeback-{side.month}.csv"
    version = side.version
    if version is not None:
        current = read_published(url, side.month)
        if current is not None and current.get("version", 1) == version:
            version = None
    _, data = read_published_file(url, side.month, name, version=version)
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    lines = list(reader)
    return Statement(list(reader.fieldnames or []), lines)


def _sums(
    lines: Iterable[dict[str, str]], key: str | None, columns: list[str]
) -> dict[str, dict[str, Decimal]]:
    """Money columns summed by the value of ``key`` (``None``: all lines, as ``TOTAL``)."""
    sums: dict[str, dict[str, Decimal]] = defaultdict(lambda: dict.fromkeys(columns, ZERO))
    for line in lines:
        group = sums[line[key] if key else TOTAL]
        for column in columns:
            group[column] += Decimal(line.get(column) or "0")
    return sums


def compare(first: Statement, second: Statement, top: int) -> dict[str, Any]:
    """Per cost center (and ``TOTAL``) and for the ``top`` assistants: A, B and B - A of
    every money column both sides have; columns only one side has are named, not compared.
    Only assistants with a change in some column are listed, ranked by the size of their
    ``cost_usd`` change; lines with no assistant (shared pools, calls without one) count in
    their cost center only."""
    a, b = first.lines, second.lines
    columns_a = [column for column in first.columns if MONEY_COLUMN.match(column)]
    columns_b = [column for column in second.columns if MONEY_COLUMN.match(column)]
    columns = [column for column in columns_b if column in columns_a]

    def rows(key: str | None, keys: Iterable[str]) -> list[dict[str, Any]]:
        sums_a, sums_b = _sums(a, key, columns), _sums(b, key, columns)
        return [
            {
                "id": name,
                "a": {c: str(sums_a[name][c]) for c in columns},
                "b": {c: str(sums_b[name][c]) for c in columns},
                "change": {c: str(sums_b[name][c] - sums_a[name][c]) for c in columns},
            }
            for name in keys
        ]

    centers = sorted({line["cost_center_id"] for line in (*a, *b)})
    named = [line for line in (*a, *b) if line.get("assistant_id")]
    changed = [
        row
        for row in rows("assistant_id", sorted({line["assistant_id"] for line in named}))
        if any(Decimal(value) for value in row["change"].values())
    ]
    changed.sort(key=lambda row: -abs(Decimal(row["change"].get("cost_usd", "0"))))
    names = {line["assistant_id"]: line.get("assistant_name", "") for line in named}
    for row in changed:
        row["name"] = names[row["id"]]
    return {
        "columns": columns,
        "only_one_side": sorted(set(columns_a) ^ set(columns_b)),
        "cost_centers": [*rows("cost_center_id", centers), *rows(None, [TOTAL])],
        "assistants": changed[:top],
        "assistants_changed": len(changed),
    }


def _diff(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    url = output_url(args.output, args.config)
    result = compare(read_statement(url, args.a), read_statement(url, args.b), args.top)
    if args.json:
        print(json.dumps({"output": url, "a": str(args.a), "b": str(args.b), **result}, indent=2))
    else:
        print(_text(args.a, args.b, result))
    return 0


def _text(a: Side, b: Side, result: dict[str, Any]) -> str:
    columns = result["columns"]
    headers = [f"A {a}", f"B {b}", *(f"change {column}" for column in columns)]

    def cells(row: dict[str, Any]) -> list[str]:
        figures = [row["a"].get("cost_usd", "-"), row["b"].get("cost_usd", "-")]
        figures += [_signed(row["change"][column]) for column in columns]
        return [_grouped(figure) for figure in figures]

    numeric = set(range(1, len(headers) + 1))
    lines = [
        f"From A {a} to B {b}: the change (B - A) of {', '.join(columns)}; A and B show cost_usd",
        "",
        table(
            ["cost center", *headers],
            [[r["id"], *cells(r)] for r in result["cost_centers"]],
            numeric,
        ),
    ]
    if result["assistants"]:
        shown = len(result["assistants"])
        lines += [
            "",
            f"Top {shown} of {result['assistants_changed']} assistants whose money changed,"
            " largest change of cost_usd first",
            "",
            table(
                ["assistant", "name", *headers],
                [[r["id"], r["name"], *cells(r)] for r in result["assistants"]],
                {n + 1 for n in numeric},
            ),
        ]
    elif result["assistants_changed"] == 0:
        lines += ["", "No assistant's money changed."]
    if result["only_one_side"]:
        lines += [
            "",
            f"Not compared (only one side has them): {', '.join(result['only_one_side'])}",
        ]
    return "\n".join(lines)


def _signed(text: str) -> str:
    return text if text.startswith("-") else f"+{text}"


def _grouped(text: str) -> str:
    if text in ("-", ""):
        return "-"
    value = Decimal(text)
    sign = "+" if text.startswith("+") else ""
    return f"{sign}{value:,}"
