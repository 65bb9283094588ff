"""``vapi-chargeback status``: every month in the output, verified against its manifest.

Each month folder (and each superseded version kept under ``_versions/``) is read with
``published.read_published``, the reader the statements page and delivery trust: every file
its manifest lists must be there with its sha256 and size. Why a set does not verify is
what that reader logs; it is collected here and shown beside the month. The delivery state
comes from the delivery ledger (``delivery.log.read_log``).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from vapi_chargeback.cli.common import (
    DEFAULT_OUTPUT,
    EXIT_ERROR,
    EXIT_OK,
    config_arg,
    storage_url,
    table,
)
from vapi_chargeback.errors import ChargebackError

MONTH_FOLDER = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
VERSION_FOLDER = re.compile(r"^v([1-9]\d*)$")


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    status = commands.add_parser(
        "status",
        parents=[common],
        help="list every published month: verified against its manifest, totals, delivery",
        description=(
            "List every month in the output (a folder or s3://… URL), current versions and"
            " the superseded ones kept under _versions/, each checked against its"
            " manifest.json (every listed file present with its sha256 and size), with its"
            " status (draft/final) and version, its totals and its delivery state."
        ),
        epilog=(
            "Exit status: 0 every month verifies, 1 a month does not (the reason is shown) or"
            " the output cannot be read, 2 a wrong command line. Example: vapi-chargeback"
            " status --output s3://finance-statements/vapi --json"
        ),
    )
    status.add_argument(
        "--output",
        metavar="URL",
        help="the output to list, a folder path or storage URL (file://…, s3://bucket/prefix)"
        " (default: the config's output, else ./output)",
    )
    config_arg(status, "chargeback.yaml whose output to list when --output is not given")
    status.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (output, months with their manifests' figures) instead"
        " of a table",
    )
    status.set_defaults(handler=_status)


@dataclass
class MonthStatus:
    month: str
    version: int | None
    """As the manifest records it (1 for a set from before versions)."""
    current: bool
    """The month folder's set; else a superseded version under ``_versions/``."""
    verified: bool
    problems: list[str] = field(default_factory=list)
    status: str | None = None
    statement_id: str | None = None
    total_usd: str | None = None
    unallocated_usd: str | None = None
    calls: int | None = None
    delivery: str | None = None
    delivery_counts: dict[str, int] | None = None


def output_url(override: str | None, config_file: Path) -> str:
    """Where to look: ``--output``, else what a run would write to (``output_location``);
    refused when this process cannot read it (see :func:`readable`)."""
    if override:
        return readable(storage_url(override), "--output")
    from vapi_chargeback.config import load_config
    from vapi_chargeback.pipeline import output_location

    config = load_config(config_file)
    url = output_location(None, config, DEFAULT_OUTPUT.resolve().as_uri())
    return readable(url, f"{config_file}: output")


def readable(url: str, named: str) -> str:
    """``url``, if the command line can read it: an existing local folder, or object storage
    without an Airflow connection in it. ``s3://conn_id@bucket/…`` names a connection only
    Airflow can resolve; without Airflow, boto3's own chain (``AWS_*`` variables, profiles,
    roles) reads ``s3://bucket/…``. A local folder that does not exist is a typo, not an
    output without months."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        folder = Path(parts.path if parts.scheme else url)
        if not folder.is_dir():
            raise OutputError(f"{named} {url}: no such folder; check the path")
    elif "@" in parts.netloc:
        bucket = parts.netloc.rsplit("@", 1)[1]
        raise OutputError(
            f"{named} {url} names the Airflow connection {parts.netloc.rsplit('@', 1)[0]!r},"
            f" which only Airflow resolves; give --output {parts.scheme}://{bucket}{parts.path}"
            " with the credentials in AWS_* variables or a profile (AWS_ENDPOINT_URL for a"
            " non-AWS endpoint)"
        )
    return url


class OutputError(ChargebackError):
    """An output the command line cannot read."""


def months(url: str) -> list[MonthStatus]:
    """Every current month and kept version under ``url``, oldest first."""
    from upath import UPath

    from vapi_chargeback.close.lifecycle import VERSIONS_DIR
    from vapi_chargeback.delivery.deliver import location

    root = UPath(url)
    found = []
    for month in _names(root, MONTH_FOLDER):
        for version in sorted(
            int(v[1:]) for v in _names(root / VERSIONS_DIR / month, VERSION_FOLDER)
        ):
            found.append(_read(url, month, version))
        item = _read(url, month, None)
        _add_delivery(item, location(url))
        found.append(item)
    kept_only = set(_names(root / VERSIONS_DIR, MONTH_FOLDER)) - {m.month for m in found}
    for month in sorted(kept_only):
        for version in sorted(
            int(v[1:]) for v in _names(root / VERSIONS_DIR / month, VERSION_FOLDER)
        ):
            found.append(_read(url, month, version))
    return sorted(found, key=lambda m: (m.month, not m.current, m.version or 0))


def _names(folder: Any, pattern: re.Pattern[str]) -> list[str]:
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(entry.name for entry in entries if pattern.match(entry.name))


def _read(url: str, month: str, version: int | None) -> MonthStatus:
    from vapi_chargeback.published import read_published

    with _reader_warnings() as problems:
        manifest = read_published(url, month, version)
    if manifest is None:
        return MonthStatus(
            month, version, version is None, False, problems or ["no manifest.json: not published"]
        )
    totals = manifest.get("totals") or {}
    ids = manifest.get("statement_ids") or {}
    return MonthStatus(
        month=month,
        version=manifest.get("version", 1),
        current=version is None,
        verified=True,
        status=manifest.get("status"),
        statement_id=ids.get("org") if isinstance(ids, dict) else None,
        total_usd=totals.get("cost_usd"),
        unallocated_usd=totals.get("unallocated_usd"),
        calls=totals.get("calls"),
    )


@contextmanager
def _reader_warnings() -> Iterator[list[str]]:
    """What ``read_published`` logs about a set it does not trust: the reasons to show."""
    problems: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                problems.append(record.getMessage().removesuffix(": month not trusted"))

    logger = logging.getLogger("vapi_chargeback.published")
    handler = Collect()
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield problems
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _add_delivery(item: MonthStatus, root: Any) -> None:
    from vapi_chargeback.delivery.log import read_log

    log = read_log(root, item.month)
    if log is None:
        item.delivery = "not delivered"
        return
    counts = log.counts()
    total = sum(counts.values())
    item.delivery_counts = counts
    if log.complete:
        item.delivery = f"sent {counts['sent']}/{total}"
    else:
        open_ = ", ".join(f"{name} {count}" for name, count in counts.items() if count)
        item.delivery = f"incomplete ({open_})"


def _status(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    url = output_url(args.output, args.config)
    found = months(url)
    if args.json:
        print(json.dumps({"output": url, "months": [asdict(m) for m in found]}, indent=2))
    else:
        print(_text(url, found))
    return EXIT_OK if all(m.verified for m in found) else EXIT_ERROR


def _text(url: str, found: list[MonthStatus]) -> str:
    if not found:
        return f"{url}: no published month"
    rows = []
    for item in found:
        version = "" if item.version is None else f"v{item.version}"
        rows.append(
            [
                item.month,
                version + ("" if item.current else " (kept)"),
                item.status or "-",
                "ok" if item.verified else "FAILED",
                _money(item.total_usd),
                _money(item.unallocated_usd),
                "-" if item.calls is None else f"{item.calls:,}",
                item.delivery or "-",
            ]
        )
    headers = ["month", "version", "status", "verified", "total USD", "unallocated USD"]
    headers += ["calls", "delivery"]
    lines = [url, "", table(headers, rows, numeric={4, 5, 6})]
    for item in found:
        for problem in item.problems:
            where = item.month if item.current else f"{item.month}@v{item.version}"
            lines.append(f"{where}: {problem}")
    return "\n".join(lines)


def _money(text: str | None) -> str:
    return "-" if text is None else f"{Decimal(text):,.2f}"
