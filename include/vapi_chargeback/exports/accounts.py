"""The ``gl:`` block of ``chargeback.yaml``: which general-ledger accounts the journal books to.

Account codes belong to the org's chart of accounts, so nothing here invents one: without a
``gl:`` block no journal is written (a journal booked to made-up accounts would import into
an ERP and land on the wrong lines). With one, every cost center must end up with an expense
account, its own ``gl_account`` or the default ``gl.expense_account``; one left without is
reported, with the file and line, before anything runs.

Codes must be quoted in the YAML: ``6100`` unquoted is a number, and ``06100`` would be read
as an octal one, so a number is refused rather than turned back into text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from vapi_chargeback.statement import JournalAccounts
from vapi_chargeback.yamldoc import Loc

ACCOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,39}$"
"""ERP account codes: ``6100``, ``6100-20``, ``EXP.AI.VOICE``; no spaces, commas or quotes."""
JOURNAL_PREFIX_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,19}$"
DEFAULT_JOURNAL_PREFIX = "VAPI-JE"


def _quoted_code(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(
            f"{value} is a number; quote account codes ('6100') so YAML keeps them as written"
            " (a leading 0 would be lost)"
        )
    return value


Account = Annotated[str, BeforeValidator(_quoted_code), Field(pattern=ACCOUNT_PATTERN)]


class GlSettings(BaseModel):
    """Where the month's journal entry books the chargeback (``journal-{YYYY-MM}.csv``)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    expense_account: Account | None = None
    """Default expense account of a cost center without its own ``gl_account``; without it
    every cost center needs one."""
    credit_account: Account
    """The clearing or accounts-payable account the month's total is credited to."""
    suspense_account: Account
    """Where unallocated cost is debited until someone reclassifies it."""
    journal_prefix: str = Field(default=DEFAULT_JOURNAL_PREFIX, pattern=JOURNAL_PREFIX_PATTERN)
    """Starts the journal id, ``{prefix}-{YYYY-MM}-v{N}`` (a restatement gets a new one)."""
    pool_accounts: dict[str, Account] = Field(default_factory=dict)
    """Shared pool name → the account its shares are debited to; a pool not listed is booked
    to each receiving cost center's expense account, as part of that cost center's cost."""
    adjustment_account: Account | None = None
    """Where corrections of earlier months and invoice adjustments are debited; none = each
    cost center's expense account."""


def journal_accounts(
    gl: GlSettings | None, cost_center_accounts: Mapping[str, str | None]
) -> JournalAccounts | None:
    """The accounts a statement carries to its journal; ``None`` without a ``gl:`` block.

    ``cost_center_accounts`` maps each cost center id to its own ``gl_account`` (or ``None``);
    the config's checks guarantee every one resolves.
    """
    if gl is None:
        return None
    expense = {}
    for center, own in cost_center_accounts.items():
        account = own or gl.expense_account
        if account is None:
            raise ValueError(
                f"cost center {center!r} has no gl_account and gl.expense_account is not set"
            )
        expense[center] = account
    return JournalAccounts(
        journal_prefix=gl.journal_prefix,
        expense_accounts=expense,
        credit_account=gl.credit_account,
        suspense_account=gl.suspense_account,
        pool_accounts=dict(gl.pool_accounts),
        adjustment_account=gl.adjustment_account,
    )


def gl_problems(
    gl: object, centers: Sequence[tuple[int, Mapping[str, Any]]], pools: Sequence[str]
) -> list[tuple[Loc, str]]:
    """Cross-field rules of the ``gl:`` block on the raw document; ``centers`` are the cost
    centers as (index, item) and ``pools`` the shared pool names
    (``config_checks.cross_check_problems`` reports them with the rest)."""
    if not isinstance(gl, dict):
        return [
            (
                ("cost_centers", index, "gl_account"),
                "gl_account needs a gl: block (credit_account, suspense_account); add one or"
                " remove gl_account",
            )
            for index, center in centers
            if center.get("gl_account") is not None
        ]
    problems: list[tuple[Loc, str]] = []
    if gl.get("expense_account") is None:
        problems += [
            (
                ("cost_centers", index, "gl_account"),
                f"cost center {center.get('id')!r} has no gl_account and gl.expense_account"
                " (the default) is not set; add gl_account: '6100' here or gl.expense_account",
            )
            for index, center in centers
            if center.get("gl_account") is None
        ]
    accounts = gl.get("pool_accounts")
    if isinstance(accounts, dict):
        problems += [
            (
                ("gl", "pool_accounts", name),
                f"{name!r} is not a shared pool; use one of {sorted(pools)}",
            )
            for name in accounts
            if name not in pools
        ]
    return problems
