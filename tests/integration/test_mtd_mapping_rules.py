"""The daily month-to-date run applies the ``mapping_rules`` as the monthly statement does.

Over real HTTP against the emulator, with the hand-made cases of
``support.rules_config`` (a CSV row beating a metadata rule, a metadata rule beating a
name rule, a name rule catching an assistant the CSV does not map, nothing matching): the
month to date through 26 October charges each case's assistant where the rules say, and
the same run without rules leaves the rules' assistants unallocated. The rules only move
unallocated money: the total is the same, the unallocated part smaller by what the rule
lines took from it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.budgets.mtd import MtdReport
from vapi_chargeback.budgets.outputs import read_mtd
from vapi_chargeback.budgets.run import MtdSettings, run_mtd
from vapi_emulator.assistants import sidecar_path
from vapi_emulator.data import generate_calls_file
from vapi_emulator.server import run_emulator

from support.mtd_cut import LineFigures, LineKey, mtd_csv_lines
from support.rules_config import (
    CONFIG,
    MAPPING,
    RULES,
    demo_config_with_rules,
    hand_made_cases,
    mapping_without,
)

pytestmark = pytest.mark.slow

KEY = "sk-mtd-rules-test"
NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
RUN_DAY = date(2026, 10, 27)


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    calls = tmp_path_factory.mktemp("calls") / "calls.parquet"
    generate_calls_file(calls, "2026-10", calls_per_month=3_000)
    roles = hand_made_cases(sidecar_path(calls))
    with run_emulator([calls], KEY) as url:
        yield url, roles


def month_to_date(
    url: str, roles: dict[str, str], folder: Path, rules: str
) -> tuple[MtdReport, dict[LineKey, LineFigures]]:
    config = folder / "config"
    config.mkdir(parents=True)
    (config / CONFIG.name).write_text(demo_config_with_rules(rules), encoding="utf-8")
    (config / MAPPING.name).write_text(mapping_without(roles), encoding="utf-8")
    shutil.copy(CONFIG.with_name("fx_rates.csv"), config)
    output = folder / "out"
    settings = MtdSettings(
        config_path=str(config / CONFIG.name),
        output_url=output.as_uri(),
        default_output_url=output.as_uri(),
        run_day=RUN_DAY,
        run_id="mtd-rules-test",
    )
    with VapiAnalyticsClient(url, KEY) as client:
        run_mtd(settings, client, now=NOW)
    report = read_mtd(output, RUN_DAY.replace(day=26))
    assert report is not None
    return report, mtd_csv_lines((output / report.relative_csv).read_bytes())


def keys_of(lines: dict[LineKey, LineFigures], assistant: str) -> set[tuple[str, str, str]]:
    """(cost center, team, allocation) of an assistant's lines, its variable-charged lines
    (team blank, a cost center the call named) left out."""
    return {
        (center, team, allocation)
        for center, team, who, allocation in lines
        if who == assistant and not (allocation == "direct" and team == "")
    }


def test_the_month_to_date_charges_what_the_rules_catch(
    org: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, roles = org
    plain, plain_lines = month_to_date(url, roles, tmp_path / "plain", "")
    ruled, ruled_lines = month_to_date(url, roles, tmp_path / "ruled", RULES)

    assert keys_of(ruled_lines, roles["metadata"]) == {("support", "from-metadata", "direct")}
    assert keys_of(ruled_lines, roles["name"]) == {("operations", "by-name", "direct")}
    assert keys_of(ruled_lines, roles["csv"]) == keys_of(plain_lines, roles["csv"])
    nothing = keys_of(ruled_lines, roles["nothing"])
    assert nothing and nothing == keys_of(plain_lines, roles["nothing"])
    assert {center for center, _, _ in nothing} == {"UNALLOCATED"}
    for role in ("metadata", "name"):
        caught = keys_of(plain_lines, roles[role])
        assert caught and {center for center, _, _ in caught} == {"UNALLOCATED"}, role

    assert ruled.total_usd == plain.total_usd
    caught = {(roles["metadata"], "support"), (roles["name"], "operations")}
    rule_lines = sum(
        (figures[2] for (_, team, who, _), figures in ruled_lines.items()
         if (who, team) in {(roles["metadata"], "from-metadata"), (roles["name"], "by-name")}),
        Decimal(0),
    )  # fmt: skip
    joined = sum(
        (figures[2] for key, figures in plain_lines.items()
         if key[3] == "direct" and key[1] == "" and (key[2], key[0]) in caught
         and key not in ruled_lines),
        Decimal(0),
    )  # fmt: skip
    assert ruled.unallocated_usd < plain.unallocated_usd
    assert plain.unallocated_usd - ruled.unallocated_usd + joined == rule_lines, (
        "a rule line is, to the cent, the unallocated lines it replaced and the variable"
        " lines naming its cost center"
    )
