"""The statement of one month: what allocation produces and every writer consumes.

It is the single hand-over point between computing money and formatting it, so the
writers never recompute a figure: each number on a CSV line, a workbook cell and the
manifest comes from the same ``Decimal`` here, already rounded to the cent.

It also carries where the month stands in its close (``close.lifecycle``): draft or
final, which version, who approved it, the invoice it was tied to and, for a
restatement, what changed against the version it replaces. The defaults are a first
draft not tied to an invoice, which is what a run publishes before anyone reviews it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from vapi_chargeback.close.ids import DEFAULT_PREFIX, StatementIds, statement_ids
from vapi_chargeback.money import round_minutes
from vapi_chargeback.statements.formatting import money_text

UNALLOCATED = "UNALLOCATED"
CORRECTION_PREFIX = "correction:"
"""``correction:{YYYY-MM}``: a delta carried from a final month (``close.corrections``)."""
INVOICE_ADJUSTMENT = "adjustment:invoice"
"""The share of the invoice difference a cost center carries (``close.tieout``)."""
Status = Literal["draft", "final"]
DRAFT: Status = "draft"
FINAL: Status = "final"


@dataclass(frozen=True)
class ChargebackLine:
    """One line per (cost center, team, assistant, allocation); money rounded to the cent."""

    cost_center_id: str
    cost_center_name: str
    team: str
    assistant_id: str
    allocation: str
    """``direct``, ``shared:<pool name>``, ``unallocated:<reason>``, ``correction:{YYYY-MM}``
    or ``adjustment:invoice``."""
    calls: int
    """A correction's calls and minutes are deltas and may be negative, like its money."""
    minutes: Decimal
    cost_usd: Decimal
    components_usd: dict[str, Decimal]
    """Reported cost components by name (``llm``, ``stt`` …), in the configured order."""
    assistant_name: str = ""
    """The assistant's name where the mapping gives one; empty otherwise."""
    corrects: str = ""
    """On a ``correction:{YYYY-MM}`` line, the statement id it corrects; empty on others."""
    charged_by: Literal["mapping", "variable", "rule:metadata", "rule:name", ""] = ""
    """The rule that charged a ``direct`` line to its cost center: the assistant mapping,
    the call's cost-center variable, or a ``mapping_rules`` entry reading the assistant's
    metadata or name; empty on pools, corrections and adjustments. Shown in
    the workbooks because both kinds of line otherwise look alike to an owner."""
    successful_calls: int | None = None
    """Calls whose ``analysis.successEvaluation`` is ``"true"``; ``None`` where not known
    (pools, corrections, statements read back from a CSV)."""

    @property
    def other_usd(self) -> Decimal:
        """Cost with no analytics column (analysis, voicemail detection …): cost − Σ components."""
        return self.cost_usd - sum(self.components_usd.values(), Decimal(0))

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What identifies a line within a statement: (cost center, team, assistant, allocation)."""
        return (self.cost_center_id, self.team, self.assistant_id, self.allocation)

    @property
    def is_correction(self) -> bool:
        return self.allocation.startswith(CORRECTION_PREFIX)

    @property
    def is_adjustment(self) -> bool:
        return self.allocation == INVOICE_ADJUSTMENT


BreakdownCell = str | int | Decimal | date | None
"""A breakdown cell: text, a count, an amount, a bucket's first day, or nothing (an average
over nothing)."""


@dataclass(frozen=True)
class Breakdown:
    """One owner-defined query definition, as rows for an extra sheet of their workbook.

    Its additive columns (calls, minutes, money) are rounded against the cost center's
    direct lines, so they add up to the statement; ``total`` is that sum row.
    """

    definition_id: str
    title: str
    columns: list[str]
    rows: list[list[BreakdownCell]]
    total: list[BreakdownCell] = field(default_factory=list)
    """The table's total row, one cell per column: ``Total`` in the first column, the
    statement's direct-line totals under calls, minutes and money, the average over the
    whole table under an average, empty text elsewhere; empty for a table written before
    totals existed."""


@dataclass(frozen=True)
class Reconciliation:
    org_total_usd: Decimal
    """From the independent ungrouped query, rounded to the cent."""
    shared_total_usd: Decimal
    lines_total_usd: Decimal
    difference_usd: Decimal
    """Σ lines − (org total + shared + corrections + adjustments)."""
    empty_month_expected: bool = False
    """The API reported no calls at all and the run was told that is expected (a param);
    without it such a month is refused, as it more often means a wrong key or a dead
    integration than a silent month."""
    corrections_usd: Decimal = Decimal("0.00")
    """Σ ``correction:`` lines: differences of final months carried into this one."""
    adjustments_usd: Decimal = Decimal("0.00")
    """Σ ``adjustment:invoice`` lines: the invoice difference spread over cost centers."""
    invoice_id: str | None = None
    """The month's invoice; ``None`` when the month is not tied to an invoice."""
    invoice_usd: Decimal | None = None

    @property
    def expected_usd(self) -> Decimal:
        """What the lines must add up to: org total + shared + corrections + adjustments."""
        return (
            self.org_total_usd + self.shared_total_usd + self.corrections_usd + self.adjustments_usd
        )

    @property
    def ok(self) -> bool:
        return self.difference_usd == 0

    @property
    def invoiced_lines_usd(self) -> Decimal:
        """The lines the invoice covers: all but the fixed shared pools and the corrections of
        earlier months (which were invoiced with those months)."""
        return self.lines_total_usd - self.shared_total_usd - self.corrections_usd

    @property
    def invoice_difference_usd(self) -> Decimal | None:
        """Invoice − the lines it covers; ``0`` when tied to the cent, ``None`` without invoice."""
        if self.invoice_usd is None:
            return None
        return self.invoice_usd - self.invoiced_lines_usd

    @property
    def tied_to_invoice(self) -> bool:
        return self.invoice_difference_usd == 0


@dataclass(frozen=True)
class Provenance:
    run_id: str
    """The Airflow run that made the statement: recorded in the manifest only, so that a rerun
    over unchanged inputs gives byte-identical statement files."""
    config_sha256: str
    mapping_sha256: str
    responses_sha256: dict[str, str]
    """Raw response file name → sha256 of its bytes."""
    generated_by: str

    @property
    def inputs_sha256(self) -> str:
        """One fingerprint of everything the figures were computed from."""
        parts = [self.config_sha256, self.mapping_sha256, self.generated_by]
        parts += [f"{name}={digest}" for name, digest in sorted(self.responses_sha256.items())]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class CostCenterInfo:
    id: str
    name: str
    owner_email: str


@dataclass(frozen=True)
class InvoiceTie:
    """The month's invoice as the tie-out held the statement against it (``close.tieout``).

    A copy of the figures the tie-out computed, so the statement can be written, handed
    between tasks and read back without the tie-out itself.
    """

    invoice_id: str
    amount_usd: Decimal
    usage_usd: Decimal
    """The statement's Vapi usage: what the invoice ties to (the org total)."""
    difference_usd: Decimal
    """``amount_usd − usage_usd``: spread as ``adjustment:invoice`` lines."""
    tolerance_pct: Decimal
    approvable: bool
    """Within tolerance and carried by the adjustment lines: the month may be approved."""
    message: str
    """The tie-out's sentence: both amounts and, when refused, what to check."""

    def manifest_block(self) -> dict[str, Any]:
        """The manifest's ``invoice`` block, as ``close.lifecycle.InvoiceBlock`` reads it back."""
        return {
            "id": self.invoice_id,
            "amount_usd": money_text(self.amount_usd),
            "usage_usd": money_text(self.usage_usd),
            "difference_usd": money_text(self.difference_usd),
            "tolerance_pct": str(self.tolerance_pct),
            "approvable": self.approvable,
            "message": self.message,
        }


@dataclass(frozen=True)
class LineChange:
    """One line that differs from the previous version; ``old`` or ``new`` is ``None`` for a
    line that was added or removed."""

    old: ChargebackLine | None
    new: ChargebackLine | None

    @property
    def key(self) -> tuple[str, str, str, str]:
        line = self.new or self.old
        if line is None:
            raise ValueError("a line change needs an old or a new line")
        return line.key

    @property
    def kind(self) -> Literal["added", "removed", "changed"]:
        return "added" if self.old is None else "removed" if self.new is None else "changed"


@dataclass(frozen=True)
class ChangesVs:
    """What a restatement changed: exactly the lines that differ from ``version``."""

    version: int
    """The version this one replaces."""
    lines: list[LineChange]

    @classmethod
    def between(
        cls, version: int, old: Sequence[ChargebackLine], new: Sequence[ChargebackLine]
    ) -> ChangesVs:
        """The lines of ``new`` that differ from ``old`` (version ``version``) as published.

        Lines are matched by :attr:`ChargebackLine.key` and compared as their files show
        them: minutes to the hundredth, a component missing on one side as zero. So old
        lines read back from a published CSV compare equal to unchanged recomputed ones.
        Assistant names are not compared: a name learnt or changed since is no change of
        figures (the new version shows it anyway).
        Changed and removed lines keep the old order, added lines follow in the new order.
        """
        before = {line.key: line for line in old}
        after = {line.key: line for line in new}
        changes = [
            LineChange(line, after.get(key))
            for key, line in before.items()
            if key not in after or _shown(line) != _shown(after[key])
        ]
        changes += [LineChange(None, line) for key, line in after.items() if key not in before]
        return cls(version, changes)


def _shown(line: ChargebackLine) -> tuple[object, ...]:
    components = {name: amount for name, amount in line.components_usd.items() if amount}
    return (
        line.cost_center_name,
        line.corrects,
        line.calls,
        round_minutes(line.minutes),
        line.cost_usd,
        sorted(components.items()),
    )


@dataclass(frozen=True)
class VerificationDifference:
    """One figure the recount from ``GET /call`` found different from the analytics-based
    statement: on a statement line (``day`` None) or on one local day of an assistant."""

    cost_center_id: str
    team: str
    assistant_id: str
    allocation: str
    day: date | None
    column: str
    """``calls``, ``minutes``, ``cost`` or a component (``llm`` …), as the CSV names them."""
    statement: Decimal
    recount: Decimal
    over_tolerance: bool

    @property
    def difference(self) -> Decimal:
        """Recount minus statement: positive when the analytics missed something."""
        return self.recount - self.statement


@dataclass(frozen=True)
class OtherByType:
    """One cost center's Other column (cost beyond the reported components) split by the
    ``costs[]`` item types of its calls; the parts add up to ``other_usd`` exactly."""

    cost_center_id: str
    other_usd: Decimal
    """The statement's Other for the cost center's direct (or unallocated) lines."""
    by_type: dict[str, Decimal]
    """``analysis``, ``voicemail-detection``, ``knowledge-base`` …, plus ``unitemised`` (cost
    no item explains) and ``rounding`` (cents of line rounding) where not zero."""


@dataclass(frozen=True)
class Verification:
    """The month recounted from call records (``verify``): what was compared, what differed."""

    calls: int
    pages: int
    """``GET /call`` bodies read (full pages that were split included)."""
    requests: int
    lines_compared: int
    lines_matched: int
    days_compared: int
    days_matched: int
    day_columns: list[str]
    """What the day comparison covers: every column when the analytics have day rows of
    the core query, else cost alone (a large org's windowed plan)."""
    tolerance_usd: Decimal
    tolerance_pct: Decimal
    passed: bool
    differences: list[VerificationDifference]
    """Largest first; at most ``MAX_LISTED`` (the run folder's drift report has them all)."""
    differences_total: int
    other_by_type: list[OtherByType]
    recount_file: str
    recount_sha256: str
    report_file: str
    report_sha256: str
    pages_sha256: list[str]
    """Every page body the recount read, in reading order."""


@dataclass(frozen=True)
class FxRate:
    """The reporting-currency rate a month is converted at (config ``reporting_currency``);
    stated with its date and source wherever converted money is shown."""

    currency: str
    """ISO 4217 code, upper case (``EUR``)."""
    rate: Decimal
    """Units of ``currency`` per 1 USD."""
    rate_date: date
    """The rate's date (``month_end``) or the last date averaged (``month_average``)."""
    rule: Literal["month_end", "month_average"]
    source: str
    """The rates file's name and the sha256 of its bytes."""
    minor_units: int
    """Decimals of the currency: 2 for EUR, 0 for JPY."""
    first_date: date | None = None
    """``month_average``: the first date averaged (the range is ``first_date``–``rate_date``);
    ``None`` for ``month_end``."""


@dataclass(frozen=True)
class JournalAccounts:
    """The general-ledger accounts of the config's ``gl:`` block, resolved per cost center,
    that ``journal-{YYYY-MM}.csv`` books to (``exports.accounts``)."""

    journal_prefix: str
    expense_accounts: dict[str, str]
    """Cost center id → its expense account (its own ``gl_account`` or the default)."""
    credit_account: str
    suspense_account: str
    """Debited with unallocated cost."""
    pool_accounts: dict[str, str] = field(default_factory=dict)
    """Shared pool name → account; a pool not listed goes to the cost center's account."""
    adjustment_account: str | None = None
    """Corrections and invoice adjustments; ``None``: the cost center's account."""


@dataclass(frozen=True)
class NamesSnapshot:
    """The assistant names a run used, and where each came from; hashed into the manifest."""

    names: dict[str, str]
    """Assistant id → name shown (the id itself where no source names it)."""
    sources: dict[str, str]
    """Assistant id → ``mapping``, ``api``, ``earlier:{YYYY-MM}`` or ``id``."""
    sha256: str
    """Of the canonical JSON of names, sources and ``api_error`` (``names.snapshot_sha256``)."""
    api_error: str | None = None
    """Why ``GET /assistant`` could not be read, when it could not: the names then come
    from the mapping and earlier months only."""


@dataclass(frozen=True)
class PreviousMonth:
    """The previous published month's lines, read back from its CSV, for month-over-month
    drivers (the Variance sheet); absent when no earlier month was published."""

    period: str
    lines: list[ChargebackLine]
    statement_id: str = ""
    """Its org statement id (with its version), so the sheet names what it compares with."""
    status: str = ""
    """``draft`` or ``final`` as its manifest records it; a draft comparison may still move."""


@dataclass(frozen=True)
class Statement:
    period: str
    """``YYYY-MM``."""
    timezone: str
    period_start: datetime
    period_end: datetime
    """Half-open ``[start, end)``, timezone-aware, in the org zone."""
    currency: str
    components: list[str]
    cost_centers: list[CostCenterInfo]
    lines: list[ChargebackLine]
    org_name: str = ""
    """The org's name (config ``org.name``), for the workbooks' title block; empty where not
    known (statements read back from a CSV, hand-made samples)."""
    breakdowns: Mapping[str, list[Breakdown]] = field(default_factory=dict)
    """Cost center id → its owner's query-definition breakdowns. In a run, a mapping that
    reads one cost center's tables when looked up (``breakdown_files.StoredBreakdowns``,
    or ``breakdowns.BreakdownTables`` that rounds them then): read them per cost center."""
    reconciliation: Reconciliation | None = None
    provenance: Provenance | None = None
    pool_notes: dict[str, str] = field(default_factory=dict)
    """Shared pool name → how its split was made where the configured rule alone does not say
    (usage re-spread with the cost, an even fallback for a zero driver); shown beside the pool."""
    status: Status = DRAFT
    version: int = 1
    """1 for the first publication; N+1 for each restatement of a final month."""
    statement_prefix: str = DEFAULT_PREFIX
    """Starts every statement id (config ``statement_prefix``)."""
    approved_by: str | None = None
    approved_at: datetime | None = None
    """Timezone-aware; set, with ``approved_by``, exactly when the month is final."""
    approved_run_id: str | None = None
    """The run whose review step recorded the approval (manifest only, like ``run_id``)."""
    restatement_reason: str | None = None
    """Why this version replaces the booked one (version 2 onwards)."""
    invoice: InvoiceTie | None = None
    """``None``: the month is not tied to an invoice."""
    changes_vs: ChangesVs | None = None
    """A restatement: the lines that differ from the version it replaces."""
    fx: FxRate | None = None
    """The reporting currency's rate; ``None`` when only USD is reported."""
    names: NamesSnapshot | None = None
    """The assistant names used on the lines; ``None`` where no names were looked up."""
    previous: PreviousMonth | None = None
    """The previous published month, for the Variance sheet; ``None`` when there is none."""
    journal: JournalAccounts | None = None
    """Where the month's journal entry books it; ``None``: no ``gl:`` block, no journal."""
    daily_cost_usd: dict[str, list[tuple[date, Decimal]]] = field(default_factory=dict)
    """Cost center id → (local day, usage cost) for the days with calls, in day order; the
    days add up to the cost center's usage lines. For the daily-cost charts."""
    verification: Verification | None = None
    """The recount from call records, where the ``verify`` step ran; ``None`` elsewhere."""
    budgets_usd: dict[str, Decimal] = field(default_factory=dict)
    """Cost center id → its monthly budget (config ``budgets``), for the Summary's budget and
    % of budget; empty when no budget is configured (the Summary then has no such columns)."""

    @property
    def statement_ids(self) -> StatementIds:
        """The org's and each cost center's statement id for this period and version."""
        return statement_ids(
            self.statement_prefix,
            self.period,
            [center.id for center in self.cost_centers],
            self.version,
        )
