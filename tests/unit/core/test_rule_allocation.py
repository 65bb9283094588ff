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
from vapi_chargeback.attribution import Attributor
from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.mapping import AssistantMapping, parse_mapping
from vapi_chargeback.mapping_rules import ListedAssistant, MappingRule, RuleBook
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.plan import build_plan
from vapi_chargeback.reconcile import reconcile
from vapi_chargeback.statement import ChargebackLine, Statement
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


UNMAPPED = {
    f"asst-u{i}": ListedAssistant(
        id=f"asst-u{i}",
        name=("sales-", "bot-", "ops-", "pilot-", "half-")[i % 5] + str(i),
        metadata=[
            {},
            {"costCenter": "sales"},
            {"costCenter": "support", "team": f"t{i}"},
            {"costCenter": "ops", "team": "ops-team"},
            {"costCenter": "gone"},
            {"team": "t2"},
        ][i % 6],
    )
    for i in range(14)
}
"""Assistants no CSV row maps: what rules catch, and where old rounding moved cents."""
PROPERTY_CSV = (
    "assistant_id,team,cost_center_id,valid_from,valid_to\n"
    "asst-csv,csv-team,support,,\n"
    "asst-half,t2,support,,2026-10-15\n"
    "asst-ops,ops-team,ops,,2026-10-10\n"
)
PROPERTY_LISTED = {
    **LISTED,
    "asst-half": ListedAssistant(
        id="asst-half", name="half-csv", metadata={"costCenter": "support", "team": "t2"}
    ),
    "asst-ops": ListedAssistant(id="asst-ops", name="ops-csv", metadata={"costCenter": "ops"}),
    **UNMAPPED,
}
ASSISTANTS = [None, *PROPERTY_LISTED, "asst-unlisted"]
rule_strategy = st.one_of(
    st.builds(
        lambda key, team_key, team: MappingRule(metadata=key, team_key=team_key, team=team),
        st.sampled_from(["costCenter", "team", "other"]),
        st.sampled_from([None, "team", "costCenter"]),
        st.sampled_from([None, "t2", "csv-team"]),
    ),
    st.builds(
        lambda pattern, center, team: MappingRule(name=pattern, cost_center=center, team=team),
        st.sampled_from(["^sales-", "bot", "", "csv", "^ops", "half", "pilot"]),
        st.sampled_from(["sales", "support", "ops"]),
        st.sampled_from(["csv-team", "by-name", "t2", "ops-team"]),
    ),
)
sub_cent = st.integers(0, 90_000).map(lambda units: D(units) / 10_000)
COMMON_RULES = [
    MappingRule(metadata="costCenter", team_key="team"),
    MappingRule(name="^ops", cost_center="ops", team="ops-team"),
    MappingRule(name="^sales-", cost_center="sales", team="by-name"),
]
"""Rules that catch many of the assistants, drawn more often than the random ones."""
EDGES = ["asst-half", "asst-ops", "asst-u3", "asst-u2", "asst-u8", "asst-meta"]
"""Assistants whose calls split around ops' last day or join a CSV line's key."""
sub_cent_call = st.builds(
    Call,
    day=st.sampled_from([1, 9, 10, 11, 15, 16, 22, 31]).map(lambda n: date(2026, 10, n)),
    cost=sub_cent,
    assistant=st.one_of(st.sampled_from(EDGES), st.sampled_from(ASSISTANTS)),
    variable=st.sampled_from([None, "", "sales", "support", "ops", "gone"]),
    duration=st.integers(0, 900).map(D),
    components=st.builds(lambda llm, tts: {"llm": llm, "tts": tts}, sub_cent, sub_cent),
)


@pytest.fixture
def property_config(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> ChargebackConfig:
    """Sales, support and ``ops``, which retires on October 15th: a rule naming ops stops
    matching then, so one assistant's calls can go to two lines (a metadata rule, then the
    next rule or ``UNALLOCATED``)."""
    doc = base_config()
    doc["cost_centers"].append(
        {"id": "ops", "name": "Ops", "owner_email": "o@example.com", "valid_to": "2026-10-15"}
    )
    return config_from(doc)


def _property_run(
    config: ChargebackConfig, calls: list[Call], rules: list[MappingRule]
) -> tuple[Statement, list[tuple[str, str, str, str]]]:
    """The statement and, per call, the key of the line it lands on."""
    entries, problems = parse_mapping(
        PROPERTY_CSV.encode(), "teams.csv", set(config.cost_center_ids),
        ends=config.cost_center_ends,
    )  # fmt: skip
    assert problems == []
    mapping = AssistantMapping(entries)
    plan = build_plan(config, StatementPeriod.for_month("2026-10", config.timezone))
    results = fake_results(plan, calls)
    book = RuleBook(rules, PROPERTY_LISTED)
    statement = allocate(config, mapping, plan, results, book)
    assert reconcile(statement, plan, results).ok
    attributor = Attributor(config.for_period(plan.period), mapping, book)
    keys = []
    for call in calls:
        a = attributor(call.assistant, call.variable, call.day)
        keys.append((a.cost_center_id, a.team, a.assistant_id, a.allocation))
    return statement, keys


def _columns(line: ChargebackLine) -> tuple[Decimal, ...]:
    return (
        D(line.calls),
        line.minutes,
        line.cost_usd,
        *(line.components_usd[c] for c in ("llm", "tts")),
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    calls=st.lists(sub_cent_call, min_size=20, max_size=60),
    rules=st.lists(st.one_of(st.sampled_from(COMMON_RULES), rule_strategy), min_size=1, max_size=4),
)
def test_rules_never_change_a_line_the_csv_or_the_variable_allocated(
    property_config: ChargebackConfig, calls: list[Call], rules: list[MappingRule]
) -> None:
    """Sub-cent costs, components and seconds, many assistants no CSV row maps.

    The guarantee, stated per line key (cost center, team, assistant, allocation): join a
    key without rules and a key with rules whenever one call lands on both; each group of
    joined keys holds, column by column, the very same rounded amounts with and without
    rules. So a line no call leaves and no call joins — every CSV- or variable-charged line
    rules leave alone — is the same line to the cent. Rules touch a CSV or variable line
    in two ways only: calls of a rule charging the same cost center, team and assistant as
    a CSV row (on days the row does not cover) join that CSV line (one line per key,
    charged by ``mapping``, first in precedence); calls whose variable names the cost
    center a rule gives move from the variable line to the rule's line (a rule acts as
    the CSV row it would suggest). Either way the money stays with the group.
    """
    before, before_keys = _property_run(property_config, calls, [])
    after, after_keys = _property_run(property_config, calls, rules)

    parent: dict[tuple[str, object], tuple[str, object]] = {}

    def root(node: tuple[str, object]) -> tuple[str, object]:
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    for old, new in zip(before_keys, after_keys, strict=True):
        parent[root(("before", old))] = root(("after", new))
    groups: dict[tuple[str, object], list[list[ChargebackLine]]] = {}
    for side, statement in (("before", before), ("after", after)):
        for line in statement.lines:
            key = (line.cost_center_id, line.team, line.assistant_id, line.allocation)
            group = groups.setdefault(root((side, key)), [[], []])
            group[side == "after"].append(line)
    for old_lines, new_lines in groups.values():
        sums = [
            [sum(column, D(0)) for column in zip(*map(_columns, side), strict=True)]
            for side in (old_lines, new_lines)
        ]
        assert sums[0] == sums[1], f"{old_lines} became {new_lines}"
        if len(old_lines) == len(new_lines) == 1 and _same_key(old_lines[0], new_lines[0]):
            assert new_lines[0] == old_lines[0], "a line rules leave alone changed"
    assert sum(line.cost_usd for line in after.lines) == sum(line.cost_usd for line in before.lines)


def _same_key(a: ChargebackLine, b: ChargebackLine) -> bool:
    return (a.cost_center_id, a.team, a.assistant_id, a.allocation) == (
        b.cost_center_id, b.team, b.assistant_id, b.allocation
    )  # fmt: skip


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


def test_a_csv_row_and_a_rule_charging_the_same_team_share_one_line(
    property_config: ChargebackConfig,
) -> None:
    """``asst-half``'s CSV row ends on the 15th; from the 16th its metadata gives the same
    cost center and team. One line (a statement has one per key), charged by ``mapping``,
    holding the CSV line and the unallocated line it replaced, each rounded as without
    rules: 1.00 + 2.00. Rounded as one line it would be 3.01, taking the cent the
    no-assistant line keeps."""
    calls = [
        Call(date(2026, 10, 5), D("1.004"), "asst-half"),
        Call(date(2026, 10, 20), D("2.004"), "asst-half"),
        Call(date(2026, 10, 20), D("0.006")),
    ]
    rules = [MappingRule(metadata="costCenter", team_key="team")]

    before, _ = _property_run(property_config, calls, [])
    after, _ = _property_run(property_config, calls, rules)

    assert _lines(before) == [
        ("support", "t2", "asst-half", "direct", "mapping", "1.00"),
        ("UNALLOCATED", "", "", "unallocated:no-assistant", "", "0.01"),
        ("UNALLOCATED", "", "asst-half", "unallocated:unmapped-assistant", "", "2.00"),
    ]
    assert _lines(after) == [
        ("support", "t2", "asst-half", "direct", "mapping", "3.00"),
        ("UNALLOCATED", "", "", "unallocated:no-assistant", "", "0.01"),
    ]
