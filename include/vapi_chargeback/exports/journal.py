"""``journal-{YYYY-MM}.csv``: the month's chargeback as one balanced journal entry for the ERP.

Accountants book the chargeback rather than read it, so the statement becomes a single
entry (one ``journal_id``) dated the period's last day in the org zone:

- per cost center, a debit to its expense account (``gl_account``, else the default
  ``gl.expense_account``) for its usage. Its shares of shared pools and its corrections
  and invoice adjustments are part of its cost too: they go to the same account unless
  ``gl.pool_accounts`` names one for the pool or ``gl.adjustment_account`` is set, then
  one more line of that cost center on that account;
- unallocated cost (and corrections of it) debited to ``gl.suspense_account``, where it
  waits to be reclassified;
- the month's total credited to ``gl.credit_account`` (clearing or accounts payable).

Lines are nets per (cost center, account), in the statement's cost-center order, then
suspense, then the credit; a net of zero is left out, a negative net (a correction that
gives money back) is a credit on that account. So Σ debit = Σ credit, and each cost
center's debits less its credits are its statement total, to the cent.

With a reporting currency the entry is in that currency: every amount is the sum of the
statement's converted lines (``fx.convert``, rounded together by largest remainder from
exact USD), so each cost center's figure is the one its workbook and the manifest show and
the credit is the converted total; each memo states the rate, its date and source. Without
one it is in USD. Bytes as ``statements/csv.py`` writes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from vapi_chargeback import fx
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.statement import UNALLOCATED, ChargebackLine, JournalAccounts, Statement
from vapi_chargeback.statements.csv import record
from vapi_chargeback.statements.formatting import money_text

COLUMNS = (
    "journal_id",
    "date",
    "line",
    "account",
    "cost_center_id",
    "debit",
    "credit",
    "currency",
    "memo",
    "statement_id",
)
SHARED_PREFIX = "shared:"


class JournalError(PermanentError):
    """The statement cannot be booked as configured (a cost center without an account)."""


def journal_name(period: str) -> str:
    return f"journal-{period}.csv"


def journal_id(statement: Statement, accounts: JournalAccounts) -> str:
    """``{prefix}-{YYYY-MM}-v{N}``: a restatement is a new entry with a new id."""
    return f"{accounts.journal_prefix}-{statement.period}-v{statement.version}"


@dataclass
class _Group:
    cost_center_id: str
    account: str
    amount: Decimal
    kinds: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JournalLine:
    account: str
    cost_center_id: str
    debit: Decimal
    credit: Decimal
    memo: str
    statement_id: str


def journal_lines(statement: Statement, accounts: JournalAccounts) -> list[JournalLine]:
    """The entry's lines, debits first and the credit last; balanced by construction."""
    converted = fx.convert(statement)
    amounts = converted.lines if converted is not None else [ln.cost_usd for ln in statement.lines]
    zero = Decimal(0)
    groups: dict[tuple[str, str], _Group] = {}
    for line, amount in zip(statement.lines, amounts, strict=True):
        account, kind = _account(line, accounts)
        group = groups.setdefault(
            (line.cost_center_id, account), _Group(line.cost_center_id, account, zero)
        )
        group.amount += amount
        if kind not in group.kinds:
            group.kinds.append(kind)
    order = {center.id: index for index, center in enumerate(statement.cost_centers)}
    ordered = sorted(groups.values(), key=lambda group: order.get(group.cost_center_id, len(order)))
    ids = statement.statement_ids
    names = {center.id: center.name for center in statement.cost_centers}
    suffix = f"; {fx.rate_sentence(statement.fx)}" if statement.fx else ""
    lines = [
        JournalLine(
            group.account,
            group.cost_center_id,
            max(group.amount, zero),
            max(-group.amount, zero),
            f"Vapi {statement.period} {_whose(group, names)}: {' + '.join(group.kinds)}{suffix}",
            ids.for_cost_center(group.cost_center_id),
        )
        for group in ordered
        if group.amount
    ]
    total = sum((group.amount for group in ordered), zero)
    if total:
        lines.append(
            JournalLine(
                accounts.credit_account,
                "",
                max(-total, zero),
                max(total, zero),
                f"Vapi {statement.period} chargeback total: statement {ids.org}{suffix}",
                ids.org,
            )
        )
    return lines


def _account(line: ChargebackLine, accounts: JournalAccounts) -> tuple[str, str]:
    """The account a statement line is booked to, and what the memo calls it."""
    if line.cost_center_id == UNALLOCATED:
        kind = "correction" if line.is_correction else "unallocated usage"
        return accounts.suspense_account, kind
    own = accounts.expense_accounts.get(line.cost_center_id)
    if own is None:
        raise JournalError(
            f"cost center {line.cost_center_id!r} has no GL account: add gl_account to it in"
            " chargeback.yaml or set gl.expense_account; nothing was published"
        )
    if line.is_correction or line.is_adjustment:
        kind = "correction" if line.is_correction else "invoice adjustment"
        return accounts.adjustment_account or own, kind
    if line.allocation.startswith(SHARED_PREFIX):
        pool = line.allocation.removeprefix(SHARED_PREFIX)
        return accounts.pool_accounts.get(pool, own), f"shared {pool}"
    return own, "usage"


def _whose(group: _Group, names: dict[str, str]) -> str:
    if group.cost_center_id == UNALLOCATED:
        return "unallocated (suspense)"
    return names.get(group.cost_center_id, group.cost_center_id)


def write_journal(statement: Statement, path: Path) -> int:
    """Write the journal of ``statement`` to ``path``; the number of journal lines.

    Raises ``JournalError`` for a cost center without an account, and if the entry would
    not balance, before anything is written.
    """
    accounts = statement.journal
    if accounts is None:
        raise JournalError("the statement has no gl: accounts; no journal can be written")
    lines = journal_lines(statement, accounts)
    debits = sum((line.debit for line in lines), Decimal(0))
    credits = sum((line.credit for line in lines), Decimal(0))
    if debits != credits:
        raise JournalError(f"{journal_name(statement.period)}: debits {debits} ≠ credits {credits}")
    text = _amount_text(statement)
    currency = statement.fx.currency if statement.fx else statement.currency
    entry = journal_id(statement, accounts)
    day = StatementPeriod.for_month(statement.period, statement.timezone).last_day.isoformat()
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(record(list(COLUMNS)))
        for number, line in enumerate(lines, start=1):
            handle.write(record(_row(entry, day, number, line, currency, text)))
    return len(lines)


def _row(
    entry: str,
    day: str,
    number: int,
    line: JournalLine,
    currency: str,
    text: Callable[[Decimal], str],
) -> list[str]:
    return [
        entry,
        day,
        str(number),
        line.account,
        line.cost_center_id,
        text(line.debit) if line.debit else "",
        text(line.credit) if line.credit else "",
        currency,
        line.memo,
        line.statement_id,
    ]


def _amount_text(statement: Statement) -> Callable[[Decimal], str]:
    rate = statement.fx
    if rate is None:
        return money_text
    return lambda amount: fx.amount_text(amount, rate.minor_units)
