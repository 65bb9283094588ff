"""Mapping rules in allocation: variable → CSV row → metadata rule → name rule → UNALLOCATED,
each line naming the rule that charged it, and rules never touching what the CSV or the
variable already allocated."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vapi_chargeback.allocate import allocate
from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.mapping import AssistantMapping, parse_mapping
from vapi_chargeback.mapping_rules import ListedAssistant, MappingRule, RuleBook
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.plan import build_plan
from vapi_chargeback.reconcile import reconcile
from vapi_chargeback.statement import Statement
from vapi_chargeback.statements.sheets import detail_sheet
from vapi_chargeback.statements.totals import summarize

from support.core_fixtures import Call, base_config, fake_results

D = Decimal
CSV = "assistant_id,team,cost_center_id,valid_from,valid_to\nasst-csv,csv-team,support,,\n"
RULES = [
    {"metadata": "costCenter", "team_key": "team"},
    {"name": "^sales-", "cost_center": "sales", "team": "by-name"},
]
LISTED = {
    "asst-csv": ListedAssistant(id="asst-csv", name="sales-csv", metadata={"costCenter": "sales"}),
    "asst-meta": ListedAssistant(
        id="asst-meta", name="sales-meta", metadata={"costCenter": "support", "team": "t2"}
    ),
    "asst-new": ListedAssistant(id="asst-new", name="sales-new-bot"),
    "asst-other": ListedAssistant(id="asst-other", name="ops", metadata={"costCenter": "ops"}),
}


@pytest.fixture
def config(config_from: Callable[[dict[str, Any]], ChargebackConfig]) -> ChargebackConfig:
    doc = base_config()
    doc["mapping_rules"] = RULES
    return config_from(doc)


def _mapping(config: ChargebackConfig) -> AssistantMapping:
    entries, problems = parse_mapping(CSV.encode(), "teams.csv", set(config.cost_center_ids))
    assert problems == []
    return AssistantMapping(entries)


def _run(
    config: ChargebackConfig, calls: list[Call], rules: list[MappingRule] | None = None
) -> Statement:
    plan = build_plan(config, StatementPeriod.for_month("2026-10", config.timezone))
    results = fake_results(plan, calls)
    book = RuleBook(config.mapping_rules if rules is None else rules, LISTED)
    statement = allocate(config, _mapping(config), plan, results, book)
    assert reconcile(statement, plan, results).ok
    return statement


def _lines(statement: Statement) -> list[tuple[str, str, str, str, str, str]]:
    return [
        (line.cost_center_id, line.team, line.assistant_id, line.allocation, line.charged_by,
         str(line.cost_usd))
        for line in statement.lines
    ]  # fmt: skip


DAY = date(2026, 10, 5)


@pytest.mark.parametrize(
    ("assistant", "variable", "expected"),
    [
        pytest.param(
            "asst-csv", None, ("support", "csv-team", "asst-csv", "direct", "mapping"),
            id="csv-row-beats-metadata-and-name",
        ),
        pytest.param(
            "asst-meta", None, ("support", "t2", "asst-meta", "direct", "rule:metadata"),
            id="metadata-beats-name",
        ),
        pytest.param(
            "asst-new", None, ("sales", "by-name", "asst-new", "direct", "rule:name"),
            id="name-rule-catches-a-new-assistant",
        ),
        pytest.param(
            "asst-other", None,
            ("UNALLOCATED", "", "asst-other", "unallocated:unmapped-assistant", ""),
            id="nothing-matches",
        ),
        pytest.param(
            "asst-unlisted", None,
            ("UNALLOCATED", "", "asst-unlisted", "unallocated:unmapped-assistant", ""),
            id="not-in-the-snapshot",
        ),
        pytest.param(
            "asst-meta", "sales", ("sales", "", "asst-meta", "direct", "variable"),
            id="variable-beats-rules",
        ),
        pytest.param(
            "asst-meta", "support", ("support", "t2", "asst-meta", "direct", "rule:metadata"),
            id="variable-naming-the-rule-center-takes-its-team-as-with-a-csv-row",
        ),
    ],
)  # fmt: skip
def test_each_precedence_step(
    config: ChargebackConfig, assistant: str, variable: str | None, expected: tuple[str, ...]
) -> None:
    statement = _run(config, [Call(DAY, D("1.25"), assistant, variable)])

    assert _lines(statement) == [(*expected, "1.25")]


def test_without_rules_the_same_calls_stay_unallocated(config: ChargebackConfig) -> None:
    statement = _run(config, [Call(DAY, D("2.00"), "asst-new")], rules=[])

    assert _lines(statement) == [
        ("UNALLOCATED", "", "asst-new", "unallocated:unmapped-assistant", "", "2.00")
    ]


ASSISTANTS = [None, *LISTED, "asst-unlisted"]
rule_strategy = st.one_of(
    st.builds(
        lambda key, team: MappingRule(metadata=key, team_key=team),
        st.sampled_from(["costCenter", "team", "other"]),
        st.sampled_from([None, "team", "costCenter"]),
    ),
    st.builds(
        lambda pattern, center, team: MappingRule(name=pattern, cost_center=center, team=team),
        st.sampled_from(["^sales-", "bot", "", "csv", "^ops$"]),
        st.sampled_from(["sales", "support"]),
        st.sampled_from(["csv-team", "by-name", "t2"]),
    ),
)
whole_cent_call = st.builds(
    Call,
    day=st.integers(1, 31).map(lambda n: date(2026, 10, n)),
    cost=st.integers(0, 5000).map(lambda cents: D(cents) / 100),
    assistant=st.sampled_from(ASSISTANTS),
    variable=st.sampled_from([None, "", "sales", "support", "ops"]),
    duration=st.integers(0, 60).map(lambda minutes: D(minutes * 60)),
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(calls=st.lists(whole_cent_call, min_size=1, max_size=30), rules=st.lists(rule_strategy))
def test_rules_never_change_a_line_the_csv_or_the_variable_allocated(
    config: ChargebackConfig, calls: list[Call], rules: list[MappingRule]
) -> None:
    """Whole-cent costs and whole minutes: every line's sum is exact, so what is compared is
    the attribution itself, not where largest-remainder rounding puts a spare cent.

    CSV lines stay as they are; a variable line either stays or — when a rule gives the
    cost center the variable names — joins that rule's line for the same cost center and
    assistant (a rule acts as a CSV row would): no money leaves a cost center.
    """
    before = _run(config, calls, rules=[])
    after = _run(config, calls, rules=rules)

    def charged(statement: Statement, rule: str) -> list[Any]:
        return [line for line in statement.lines if line.charged_by == rule]

    assert charged(after, "mapping") == charged(before, "mapping")
    kept = charged(after, "variable")
    assert all(line in charged(before, "variable") for line in kept)
    direct: dict[tuple[str, str], Decimal] = {}
    for line in after.lines:
        if line.allocation == "direct":
            key = (line.cost_center_id, line.assistant_id)
            direct[key] = direct.get(key, D(0)) + line.cost_usd
    for line in charged(before, "variable"):
        if line not in kept:
            assert any(
                (rule.cost_center_id, rule.assistant_id) == (line.cost_center_id, line.assistant_id)
                for rule in after.lines
                if rule.charged_by.startswith("rule:")
            ), f"{line} left its cost center"
    for line in before.lines:
        if line.allocation == "direct":
            previous = sum(
                (
                    other.cost_usd
                    for other in before.lines
                    if other.allocation == "direct"
                    and (other.cost_center_id, other.assistant_id)
                    == (line.cost_center_id, line.assistant_id)
                ),
                D(0),
            )
            assert direct[(line.cost_center_id, line.assistant_id)] >= previous
    assert {line.charged_by for line in after.lines} <= {
        "mapping", "variable", "rule:metadata", "rule:name", ""
    }  # fmt: skip
    assert sum(line.cost_usd for line in after.lines) == sum(c.cost for c in calls)


def test_the_detail_sheet_names_the_rule_that_charged_each_line(config: ChargebackConfig) -> None:
    calls = [Call(DAY, D("1.00"), assistant) for assistant in ("asst-csv", "asst-meta", "asst-new")]
    statement = _run(config, calls)

    detail = detail_sheet(statement, summarize(statement))
    headers = [column.header for column in detail.columns]
    by_assistant = {
        row[headers.index("Assistant ID")]: row[headers.index("Charged by")] for row in detail.rows
    }
    assert by_assistant == {
        "asst-csv": "Assistant mapping",
        "asst-meta": "Metadata rule",
        "asst-new": "Name rule",
    }
