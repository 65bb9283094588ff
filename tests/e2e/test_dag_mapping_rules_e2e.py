"""Mapping rules through the real DAG: ``airflow dags test`` against the emulator.

The emulator's ``GET /assistant`` answer is rewritten so that one assistant shows each
precedence step (``support.rules_config.hand_made_cases``): a CSV row beats a metadata
rule, a metadata rule beats a name rule, a name rule catches an assistant the CSV does not
map, and an assistant nothing matches stays ``UNALLOCATED``. October runs once with the
demo config, its ``mapping_rules:`` replaced by the cases' rules and its mapping without
the rows of the two assistants the rules are to catch. The published finance workbook's
Detail sheet names each line's cost center, team and rule; the manifest counts the rules'
lines; and the published lines add up, to the cent, to the org's total from an ungrouped
query made here, plus the fixed pools.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from vapi_chargeback import localrun
from vapi_emulator.assistants import sidecar_path

from support.rules_config import (
    CONFIG,
    MAPPING,
    ROOT,
    RULES,
    demo_config_with_rules,
    hand_made_cases,
    mapping_without,
)
from support.statement_checks import csv_rows, fixed_shared_total, org_total

MONTH = "2026-10"
CALLS_PER_MONTH = 3000
CHARGED_BY = {
    "Assistant mapping": "mapping",
    "Cost-center variable": "variable",
    "Metadata rule": "rule:metadata",
    "Name rule": "rule:name",
}
"""The Detail sheet's Charged by cell → the manifest's key."""

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]


@dataclass(frozen=True)
class Published:
    folder: Path
    roles: dict[str, str]
    base_url: str
    api_key: str


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    work = tmp_path_factory.mktemp("rules-e2e")
    calls = work / "calls.parquet"
    localrun.generate_calls(calls, month=MONTH, months=1, calls_per_month=CALLS_PER_MONTH)
    roles = hand_made_cases(sidecar_path(calls))
    config = work / "config"
    config.mkdir()
    (config / CONFIG.name).write_text(demo_config_with_rules(RULES), encoding="utf-8")
    (config / MAPPING.name).write_text(mapping_without(roles), encoding="utf-8")
    shutil.copy(CONFIG.with_name("fx_rates.csv"), config)
    api_key = secrets.token_urlsafe(16)
    with localrun.serve_emulator([calls], api_key, log=work / "access.log") as base_url:
        home, output = work / "airflow-home", work / "output"
        env = localrun.airflow_env(
            project_dir=ROOT,
            airflow_home=home,
            api_base_url=base_url,
            api_key=api_key,
            output_url=output.as_uri(),
            config_path=config / CONFIG.name,
        )
        localrun.migrate(env)
        localrun.dags_test(date(2026, 11, 1), env, log_name="dags-test-rules.log")
        yield Published(output / MONTH, roles, base_url, api_key)


def detail_rows(folder: Path) -> list[dict[str, object]]:
    """The finance workbook's Detail sheet, one dict per line (the Total row left out; an
    empty cell as ``""``)."""
    book = openpyxl.load_workbook(folder / f"chargeback-{MONTH}.xlsx", read_only=True)
    rows = [list(row) for row in book["Detail"].iter_rows(values_only=True)]
    book.close()
    start = next(i for i, row in enumerate(rows) if "Charged by" in row)
    header = [str(cell) for cell in rows[start]]
    lines = [
        {name: "" if cell is None else cell for name, cell in zip(header, row, strict=False)}
        for row in rows[start + 1 :]
    ]
    return [line for line in lines if line["Cost center ID"] not in ("", "Total")]


def usage(rows: list[dict[str, object]], assistant: str) -> set[tuple[object, ...]]:
    """(cost center, team, allocation, charged by) of an assistant's lines, those its
    calls' variable charged left out (a variable wins over every rule)."""
    return {
        (row["Cost center ID"], row["Team"], row["Allocation"], row["Charged by"])
        for row in rows
        if row["Assistant ID"] == assistant and row["Charged by"] != "Cost-center variable"
    }


def test_each_precedence_step_publishes_its_cost_center_team_and_rule(
    published: Published,
) -> None:
    rows = detail_rows(published.folder)
    roles = published.roles

    csv_charged = usage(rows, roles["csv"])
    assert csv_charged, "the CSV-mapped assistant has calls"
    assert {charged for *_, charged in csv_charged} == {"Assistant mapping"}, (
        "a CSV row beats a metadata and a name rule"
    )
    assert usage(rows, roles["metadata"]) == {
        ("support", "from-metadata", "direct", "Metadata rule")
    }, "a metadata rule beats a name rule"
    assert usage(rows, roles["name"]) == {("operations", "by-name", "direct", "Name rule")}
    nothing = usage(rows, roles["nothing"])
    assert nothing, "the unmatched assistant has calls"
    assert {(center, team) for center, team, *_ in nothing} == {("UNALLOCATED", "")}
    assert {allocation for _, _, allocation, _ in nothing} <= {
        "unallocated:unmapped-assistant",
        "unallocated:unknown-cost-center",
    }


def test_the_manifest_counts_the_rules_lines(published: Published) -> None:
    rows = detail_rows(published.folder)
    manifest = json.loads((published.folder / "manifest.json").read_text(encoding="utf-8"))

    counted = Counter(CHARGED_BY[str(row["Charged by"])] for row in rows if row["Charged by"])
    assert manifest["totals"]["lines_by_charged_by"] == dict(counted)
    assert counted["rule:metadata"] == 1 and counted["rule:name"] == 1


def test_the_statement_reconciles_to_the_cent(published: Published) -> None:
    lines = csv_rows(published.folder, MONTH)
    manifest = json.loads((published.folder / "manifest.json").read_text(encoding="utf-8"))

    total = sum((Decimal(line["cost_usd"]) for line in lines), Decimal(0))
    assert total == org_total(published, MONTH) + fixed_shared_total()
    check = manifest["reconciliation"]
    assert check["ok"] is True and Decimal(check["difference_usd"]) == 0
    detail = detail_rows(published.folder)
    assert len(detail) == len(lines)
    assert sum((Decimal(str(row["Cost (USD)"])) for row in detail), Decimal(0)) == total
