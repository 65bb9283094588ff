"""journal-{YYYY-MM}.csv: one balanced entry whose cost-center lines are the statement's totals."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vapi_chargeback import fx, statement_json
from vapi_chargeback.exports.journal import COLUMNS, JournalError, write_journal
from vapi_chargeback.statement import (
    UNALLOCATED,
    ChargebackLine,
    CostCenterInfo,
    FxRate,
    JournalAccounts,
    Statement,
)
from vapi_chargeback.statements.render import render_statement
from vapi_chargeback.storage import publish_statement

from support.statement_samples import closed_statement, line, sample_statement

ACCOUNTS = JournalAccounts(
    journal_prefix="VAPI-JE",
    expense_accounts={"sales": "6410", "support": "6400"},
    credit_account="2100",
    suspense_account="1999",
    pool_accounts={"platform": "6450"},
)
EUR = FxRate("EUR", Decimal("0.9234"), date(2026, 10, 30), "month_end", "fx.csv sha256:ab", 2)


def rows_of(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def test_the_closed_month_books_as_one_balanced_entry(tmp_path: Path) -> None:
    path = tmp_path / "journal-2026-10.csv"

    assert write_journal(closed_statement(journal=ACCOUNTS), path) == 6

    assert path.read_text(encoding="utf-8") == (
        ",".join(COLUMNS) + "\n"
        "VAPI-JE-2026-10-v1,2026-10-31,1,6410,sales,101.06,,USD,"
        "Vapi 2026-10 Sales: usage + correction + invoice adjustment,VAPI-2026-10-sales-v1\n"
        "VAPI-JE-2026-10-v1,2026-10-31,2,6450,sales,7.00,,USD,"
        "Vapi 2026-10 Sales: shared platform,VAPI-2026-10-sales-v1\n"
        "VAPI-JE-2026-10-v1,2026-10-31,3,6400,support,40.91,,USD,"
        '"Vapi 2026-10 Support, 1st level: usage + invoice adjustment",VAPI-2026-10-support-v1\n'
        "VAPI-JE-2026-10-v1,2026-10-31,4,6450,support,5.00,,USD,"
        '"Vapi 2026-10 Support, 1st level: shared platform",VAPI-2026-10-support-v1\n'
        "VAPI-JE-2026-10-v1,2026-10-31,5,1999,UNALLOCATED,31.30,,USD,"
        "Vapi 2026-10 unallocated (suspense): unallocated usage + correction,VAPI-2026-10-ORG-v1\n"
        "VAPI-JE-2026-10-v1,2026-10-31,6,2100,,,185.27,USD,"
        "Vapi 2026-10 chargeback total: statement VAPI-2026-10-ORG-v1,VAPI-2026-10-ORG-v1\n"
    )


def test_adjustment_account_takes_corrections_and_invoice_adjustments(tmp_path: Path) -> None:
    path = tmp_path / "journal.csv"
    accounts = replace(ACCOUNTS, adjustment_account="6490", pool_accounts={})

    write_journal(closed_statement(journal=accounts), path)

    booked = {(row["cost_center_id"], row["account"]): row["debit"] for row in rows_of(path)}
    assert booked == {
        ("sales", "6410"): "107.00",
        ("sales", "6490"): "1.06",
        ("support", "6400"): "45.00",
        ("support", "6490"): "0.91",
        ("UNALLOCATED", "1999"): "31.30",
        ("", "2100"): "",
    }


def test_a_restatement_is_a_new_entry_dated_the_last_local_day(tmp_path: Path) -> None:
    path = tmp_path / "journal.csv"

    write_journal(closed_statement(journal=ACCOUNTS, version=2), path)

    assert {(row["journal_id"], row["date"]) for row in rows_of(path)} == {
        ("VAPI-JE-2026-10-v2", "2026-10-31")
    }


def test_in_the_reporting_currency_each_memo_states_the_rate(tmp_path: Path) -> None:
    path = tmp_path / "journal.csv"
    statement = closed_statement(journal=ACCOUNTS, fx=EUR)

    write_journal(statement, path)

    rows = rows_of(path)
    converted = fx.convert(statement)
    assert converted is not None
    assert {row["currency"] for row in rows} == {"EUR"}
    assert rows[-1]["credit"] == str(converted.total) == "171.08"
    assert all(
        "1 USD = 0.9234 EUR, rate of 2026-10-30 (month_end), fx.csv sha256:ab" in row["memo"]
        for row in rows
    )


def test_a_cost_center_without_an_account_publishes_nothing(tmp_path: Path) -> None:
    accounts = replace(ACCOUNTS, expense_accounts={"sales": "6410"})
    statement = closed_statement(journal=accounts)

    with pytest.raises(JournalError, match="cost center 'support' has no GL account"):
        write_journal(statement, tmp_path / "journal.csv")
    with pytest.raises(JournalError, match="'support'"):
        publish_statement(statement, tmp_path / "out")

    assert not (tmp_path / "journal.csv").exists()
    assert not (tmp_path / "out" / "2026-10").exists()


def test_the_journal_is_in_the_set_only_with_gl_accounts(tmp_path: Path) -> None:
    with_gl = render_statement(closed_statement(journal=ACCOUNTS), tmp_path / "gl")
    without = render_statement(closed_statement(), tmp_path / "plain")

    files = json.loads(with_gl.manifest.read_bytes())["files"]
    assert files["journal-2026-10.csv"]["rows"] == 6
    assert "focus-2026-10.csv" in files
    assert "journal-2026-10.csv" not in json.loads(without.manifest.read_bytes())["files"]
    assert not (tmp_path / "plain" / "journal-2026-10.csv").exists()


CENTERS = ["sales", "support", "ops"]
KINDS = ["direct", "shared:platform", "shared:phones", "correction:2026-09", "adjustment:invoice"]


@st.composite
def statements(draw: st.DrawFn, *, with_fx: bool) -> Statement:
    lines: list[ChargebackLine] = []
    for center, kind, cents in draw(
        st.lists(
            st.tuples(
                st.sampled_from([*CENTERS, UNALLOCATED]),
                st.sampled_from(KINDS),
                st.integers(-(10**7), 10**8),
            ),
            max_size=25,
        )
    ):
        if center == UNALLOCATED and not kind.startswith("correction:"):
            kind = "unallocated:no-assistant"
        cost = Decimal(cents).scaleb(-2)
        lines.append(line(center, center.title(), "", "", kind, 0, "0", f"{cost}", ("0", "0", "0")))
    accounts = JournalAccounts(
        journal_prefix="JE",
        expense_accounts={center: f"6{index}00" for index, center in enumerate(CENTERS)},
        credit_account="2100",
        suspense_account="1999",
        pool_accounts=draw(st.sampled_from([{}, {"platform": "6450"}])),
        adjustment_account=draw(st.sampled_from([None, "6490"])),
    )
    rate = None
    if with_fx:
        rate = FxRate(
            "XXX",
            draw(st.decimals(Decimal("0.0001"), Decimal("20000"), places=4)),
            date(2026, 10, 30),
            "month_end",
            "rates.csv",
            draw(st.sampled_from([0, 2, 3])),
        )
    return sample_statement(
        cost_centers=[CostCenterInfo(c, c.title(), f"{c}@example.com") for c in CENTERS],
        lines=lines,
        journal=accounts,
        fx=rate,
    )


def booked(statement: Statement, tmp_path: Path) -> tuple[dict[str, Decimal], Decimal, Decimal]:
    """(cost center → debits − credits where not zero, Σ debit, Σ credit) as the file shows
    them; a cost center can net to zero over two accounts."""
    path = tmp_path / "journal.csv"
    write_journal(statement, path)
    by_center: dict[str, Decimal] = defaultdict(Decimal)
    debits = credits = Decimal(0)
    for row in rows_of(path):
        debit, credit = Decimal(row["debit"] or 0), Decimal(row["credit"] or 0)
        debits, credits = debits + debit, credits + credit
        if row["cost_center_id"]:
            by_center[row["cost_center_id"]] += debit - credit
    return {center: net for center, net in by_center.items() if net}, debits, credits


def statement_totals(statement: Statement) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for item in statement.lines:
        totals[item.cost_center_id] += item.cost_usd
    return {center: total for center, total in totals.items() if total}


@settings(max_examples=150, deadline=None)
@given(statement=statements(with_fx=False))
def test_for_random_statements_the_journal_balances_per_cost_center(
    statement: Statement, tmp_path_factory: pytest.TempPathFactory
) -> None:
    by_center, debits, credits = booked(statement, tmp_path_factory.mktemp("j"))

    assert debits == credits
    assert by_center == statement_totals(statement)


@settings(max_examples=150, deadline=None)
@given(statement=statements(with_fx=True))
def test_converted_journal_balances_and_matches_the_converted_cost_centers(
    statement: Statement, tmp_path_factory: pytest.TempPathFactory
) -> None:
    converted = fx.convert(statement)
    assert converted is not None

    by_center, debits, credits = booked(statement, tmp_path_factory.mktemp("j"))

    assert debits == credits
    assert by_center == {c: v for c, v in converted.by_cost_center.items() if v}
    assert sum(by_center.values(), Decimal(0)) == converted.total


def test_the_accounts_survive_the_hand_over_between_tasks() -> None:
    """Approval re-renders the statement from its JSON in the work folder: the journal must
    come out the same."""
    statement = closed_statement(journal=ACCOUNTS, fx=EUR)

    assert statement_json.loads(statement_json.dumps(statement)).journal == ACCOUNTS
