"""Mapping rules over real HTTP: the emulator lists assistants carrying ``metadata`` and
telling names, and October runs through the pipeline's steps with the demo config, its
``mapping_rules:`` block replaced by this test's (or removed). Each precedence step shows on a hand-picked assistant — a CSV row
beats a metadata rule, a metadata rule beats a name rule, a name rule catches an assistant
no row maps, nothing matching stays ``UNALLOCATED`` — lines the CSV charged are the same as
without rules, calls the variable charged stay at the cost center it names, and the
statement still reconciles to the cent. ``mapping suggest`` round-trips: its rows appended
to the mapping, with the rules removed, the month has the same lines, calls and column
totals, each amount rounded from the same exact sum (see the round-trip test for the cents).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from vapi_chargeback import cli, pipeline, statement_json
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.statement import ChargebackLine, Statement
from vapi_emulator.assistants import sidecar_path
from vapi_emulator.data import generate_calls_file
from vapi_emulator.server import run_emulator

from support.rules_config import (
    CONFIG,
    MAPPING,
    RULES,
    demo_config_with_rules,
    hand_made_cases,
    mapping_without,
)

KEY = "sk-mapping-rules-test"
MONTH = "2026-10"


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """The emulator's URL and the role of each hand-picked assistant id."""
    calls = tmp_path_factory.mktemp("calls") / "calls.parquet"
    generate_calls_file(calls, MONTH, calls_per_month=3_000)
    roles = hand_made_cases(sidecar_path(calls))
    with run_emulator([calls], KEY) as url:
        yield url, roles


def config_folder(folder: Path, roles: dict[str, str], *, rules: bool) -> Path:
    """The demo config with this test's rules (or none) in place of its own, and its mapping
    without the rows of the assistants the rules are to catch."""
    folder.mkdir()
    (folder / CONFIG.name).write_text(demo_config_with_rules(RULES if rules else ""), "utf-8")
    (folder / MAPPING.name).write_text(mapping_without(roles), encoding="utf-8")
    shutil.copy(CONFIG.with_name("fx_rates.csv"), folder)
    return folder / CONFIG.name


def run_month(base_url: str, config: Path, output: Path) -> Statement:
    run = pipeline.plan_run(
        pipeline.RunSettings(
            config_path=str(config),
            output_url=output.as_uri(),
            default_output_url=output.as_uri(),
            month=MONTH,
            run_id="mapping-rules-test",
        )
    )
    with VapiAnalyticsClient(base_url, KEY) as client:
        fetched = [
            pipeline.fetch_batch(run, index, client).model_dump(mode="json")
            for index in range(run.batch_count)
        ]
    pipeline.publish_run(run, pipeline.reconcile_run(run, pipeline.allocate_run(run, fetched)))
    folder = pipeline.default_open_path(run.work_url)
    return statement_json.loads(bytes((folder / pipeline.RECONCILED_FILE).read_bytes()), folder)


def usage(statement: Statement, assistant: str) -> set[tuple[str, str, str, str]]:
    return {
        (line.cost_center_id, line.team, line.allocation, line.charged_by)
        for line in statement.lines
        if line.assistant_id == assistant and not line.allocation.startswith("shared:")
    }


def test_rules_allocate_in_precedence_and_the_month_reconciles(
    org: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, roles = org
    plain = run_month(url, config_folder(tmp_path / "plain", roles, rules=False), tmp_path / "a")
    ruled = run_month(url, config_folder(tmp_path / "ruled", roles, rules=True), tmp_path / "b")

    csv_charged = usage(plain, roles["csv"])
    assert csv_charged and {rule for *_, rule in csv_charged} <= {"mapping", "variable"}
    assert usage(ruled, roles["csv"]) == csv_charged, "a CSV row beats a metadata rule"
    direct = {item for item in usage(ruled, roles["metadata"]) if item[3] != "variable"}
    assert direct == {("support", "from-metadata", "direct", "rule:metadata")}
    direct = {item for item in usage(ruled, roles["name"]) if item[3] != "variable"}
    assert direct == {("operations", "by-name", "direct", "rule:name")}
    nothing = {item for item in usage(ruled, roles["nothing"]) if item[3] != "variable"}
    assert nothing and all(item[2].startswith("unallocated:") for item in nothing)
    assert nothing == {i for i in usage(plain, roles["nothing"]) if i[3] != "variable"}
    for role in ("metadata", "name"):
        assert any(item[2].startswith("unallocated:") for item in usage(plain, roles[role])), (
            f"without rules the {role} assistant is unallocated"
        )

    def charged(statement: Statement, rule: str) -> dict[tuple[str, str, str], ChargebackLine]:
        return {
            (line.cost_center_id, line.team, line.assistant_id): line
            for line in statement.lines
            if line.charged_by == rule
        }

    assert charged(ruled, "mapping") == charged(plain, "mapping"), "CSV lines move no cent"
    before, after = charged(plain, "variable"), charged(ruled, "variable")
    assert after.items() <= before.items()
    for center, _, assistant in before.keys() - after.keys():
        assert any(
            line.charged_by.startswith("rule:")
            and (line.cost_center_id, line.assistant_id) == (center, assistant)
            for line in ruled.lines
        ), "a variable line only joins the rule line of the cost center it names"
    for statement in (plain, ruled):
        check = statement.reconciliation
        assert check is not None and check.ok and check.difference_usd == Decimal("0.00")
    assert sum(line.cost_usd for line in ruled.lines) == sum(line.cost_usd for line in plain.lines)
    unallocated = [
        sum(line.cost_usd for line in s.lines if line.allocation.startswith("unallocated:"))
        for s in (plain, ruled)
    ]
    assert unallocated[1] < unallocated[0], "rules leave less unallocated"
    manifest = json.loads((tmp_path / "b" / MONTH / "manifest.json").read_text(encoding="utf-8"))
    counts = manifest["totals"]["lines_by_charged_by"]
    assert counts["rule:metadata"] >= 1 and counts["rule:name"] >= 1


def test_suggested_rows_without_the_rules_give_the_same_statement(
    org: tuple[str, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``mapping suggest`` over real HTTP, its rows appended to the mapping and the rules
    removed: the same month has the same lines, only charged by the mapping now.

    Same lines, calls and successful calls, and every column's total to the cent. The
    amounts are rounded from the same exact sums but not in the same groups: the month
    with rules rounds as the month without them (so rules move no cent of a line they
    leave alone) and a rule line is the sum of the up to three lines it replaced (the
    assistant's ``unmapped-assistant`` and ``unknown-cost-center`` lines and its variable
    line naming the rule's cost center), each within a cent of its exact sum; the round
    trip rounds that line, and every other, as one. So a rule line may differ by up to
    3 cents (minutes: hundredths), any other line by one, and the shared lines (split by
    calls, evenly or by fixed shares) not at all.
    """
    url, roles = org
    ruled_config = config_folder(tmp_path / "ruled", roles, rules=True)
    ruled = run_month(url, ruled_config, tmp_path / "a")
    monkeypatch.setenv(cli.API_KEY_ENV, KEY)
    rows, unmatched = tmp_path / "suggested.csv", tmp_path / "unmatched.csv"
    argv = ["mapping", "suggest", "--config", str(ruled_config), "--api-url", url]
    argv += ["--valid-from", f"{MONTH}-01", "--out", str(rows), "--unmatched", str(unmatched)]
    assert cli.main(argv) == 0

    suggested = rows.read_text(encoding="utf-8").splitlines(keepends=True)
    assert suggested[0].startswith("assistant_id,team,cost_center_id,valid_from,valid_to")
    assert sorted(row.split(",")[0] for row in suggested[1:]) == sorted(
        (roles["metadata"], roles["name"])
    )
    assert roles["nothing"] in unmatched.read_text(encoding="utf-8")
    plain_config = config_folder(tmp_path / "round-trip", roles, rules=False)
    with plain_config.with_name(MAPPING.name).open("a", encoding="utf-8") as mapping:
        mapping.writelines(suggested[1:])
    again = run_month(url, plain_config, tmp_path / "b")

    def identity(statement: Statement) -> list[tuple[object, ...]]:
        return [
            (line.cost_center_id, line.team, line.assistant_id, line.allocation, line.calls,
             line.successful_calls)
            for line in statement.lines
        ]  # fmt: skip

    def amounts(line: ChargebackLine) -> list[Decimal]:
        return [line.minutes, line.cost_usd, *line.components_usd.values()]

    assert identity(again) == identity(ruled)
    for before, after in zip(ruled.lines, again.lines, strict=True):
        bound = Decimal("0.03") if before.charged_by.startswith("rule:") else Decimal("0.01")
        if before.allocation.startswith("shared:"):
            bound = Decimal(0)
        differences = [abs(x - y) for x, y in zip(amounts(before), amounts(after), strict=True)]
        assert max(differences) <= bound, f"{before} became {after}"
    for column in range(len(amounts(ruled.lines[0]))):
        assert sum(amounts(line)[column] for line in again.lines) == sum(
            amounts(line)[column] for line in ruled.lines
        )
    moved = {
        (a.charged_by, b.charged_by)
        for a, b in zip(ruled.lines, again.lines, strict=True)
        if a.charged_by != b.charged_by
    }
    assert moved == {("rule:metadata", "mapping"), ("rule:name", "mapping")}
