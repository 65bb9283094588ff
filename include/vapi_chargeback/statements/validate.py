"""Refuse a Statement that would produce a wrong, unsafe or unreadable statement set.

Validation runs before a single byte is published, so a bad Statement leaves the
published month untouched (rendering checks each cost center's stored breakdown tables
as it reads them for the workbook, in its scratch folder: :func:`table_problems`). Every problem names the field (``lines[12].cost_usd``)
and what the producer has to fix; all problems are reported at once so one run
shows the whole picture.

Corrections of final months (``correction:{YYYY-MM}``) and the invoice adjustment
(``adjustment:invoice``) are checked like every line, with what makes them what they
are: a correction is a delta, so its calls and minutes may be negative, it names the
statement it corrects and may sit on ``UNALLOCATED`` (the corrected month's unallocated
lines changed); an adjustment needs the invoice it ties the month to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal

from vapi_chargeback.close.ids import ORG, StatementPrefixError, validate_prefix
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.money import CENT
from vapi_chargeback.statement import (
    DRAFT,
    FINAL,
    UNALLOCATED,
    Breakdown,
    BreakdownCell,
    ChargebackLine,
    Statement,
)

SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""Ids become file names and sheet names: letters, digits, ``-`` and ``_`` only."""
PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
SHA256 = re.compile(r"[0-9a-f]{64}")
ALLOCATION = re.compile(
    r"direct|shared:.+|unallocated:.+|correction:\d{4}-(0[1-9]|1[0-2])|adjustment:invoice",
    re.DOTALL,
)
CORRECTED_ID = re.compile(
    r"[A-Za-z][A-Za-z0-9_-]*-(?P<period>\d{4}-\d{2})-[A-Za-z0-9_-]+-v[1-9]\d*"
)
"""A statement id, ``{prefix}-{YYYY-MM}-{cost_center_id|ORG}-v{N}`` (``close.ids``)."""
ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
"""Characters XML 1.0 cannot carry: a workbook holding one is rejected by Excel."""
MAX_CELL_TEXT = 32_767
"""Excel's limit on the length of one cell's text."""
MAX_EXACT_MONEY = Decimal(10) ** 13
"""Excel keeps 15 significant digits: beyond this an amount loses its cents."""
MAX_REPORTED_PROBLEMS = 25
PLAIN_CELL_TYPES = frozenset({str, int, Decimal, date, type(None)})
"""A breakdown cell's types (``BreakdownCell``) exactly: a subclass (``bool``, ``datetime``)
is checked cell by cell."""


class StatementError(PermanentError, ValueError):
    """The Statement cannot be published; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        lines = [f"statement refused, nothing was written ({len(problems)} problem(s)):"]
        lines += [f"  - {problem}" for problem in shown]
        if more:
            lines.append(f"  … and {more} more")
        super().__init__("\n".join(lines))


def validate_statement(statement: Statement, *, tables: bool = True) -> None:
    """Raise ``StatementError`` listing every problem; return quietly when publishable.

    ``tables=False`` leaves the breakdown tables' contents to the caller, who checks each
    cost center's with :func:`table_problems` when reading them anyway (rendering reads a
    stored cost center's tables once, not once here and again for its workbook). Should
    anything else be wrong, the tables are checked here too: a refusal lists everything."""
    problems = [
        *_period_problems(statement),
        *_cost_center_problems(statement),
        *_line_problems(statement),
        *_breakdown_problems(statement, tables=tables),
        *_reconciliation_problems(statement),
        *_provenance_problems(statement),
        *_lifecycle_problems(statement),
        *_invoice_problems(statement),
        *_changes_problems(statement),
    ]
    if problems and not tables:
        validate_statement(statement)
    if problems:
        raise StatementError(problems)


def _period_problems(statement: Statement) -> Iterable[str]:
    if not PERIOD.fullmatch(statement.period):
        yield f"period: {statement.period!r} is not YYYY-MM"
    for name in ("period_start", "period_end"):
        moment: datetime = getattr(statement, name)
        if moment.tzinfo is None or moment.utcoffset() is None:
            yield f"{name}: {moment.isoformat()} has no time zone; pass an aware datetime in the org zone"
    if _aware(statement.period_start) and _aware(statement.period_end):
        if statement.period_end <= statement.period_start:
            yield "period_end: must be after period_start (the period is [start, end))"
        if statement.period_start.strftime("%Y-%m") != statement.period:
            yield (
                f"period_start: {statement.period_start.isoformat()} does not begin period "
                f"{statement.period}; compute it in the org zone"
            )
    yield from _text_problems("timezone", statement.timezone, required=True)
    yield from _text_problems("currency", statement.currency, required=True)
    for index, component in enumerate(statement.components):
        if not SLUG.fullmatch(component):
            yield f"components[{index}]: {component!r} is not a slug (letters, digits, - and _)"
    if len(set(statement.components)) != len(statement.components):
        yield f"components: {statement.components} lists a component twice"


def _cost_center_problems(statement: Statement) -> Iterable[str]:
    seen: set[str] = set()
    for index, center in enumerate(statement.cost_centers):
        where = f"cost_centers[{index}]"
        if not SLUG.fullmatch(center.id):
            yield (
                f"{where}.id: {center.id!r} is not a safe slug (1-64 letters, digits, - and _, "
                "starting with a letter or digit); it becomes a file name"
            )
        if center.id == UNALLOCATED:
            yield f"{where}.id: {UNALLOCATED!r} is reserved for unallocated lines; rename the cost center"
        if center.id == ORG:
            yield f"{where}.id: {ORG!r} is reserved for the org's statement id; rename the cost center"
        if center.id.lower() in seen:
            yield f"{where}.id: {center.id!r} appears twice (ids are compared case-insensitively)"
        seen.add(center.id.lower())
        yield from _text_problems(f"{where}.name", center.name, required=True)
        yield from _text_problems(f"{where}.owner_email", center.owner_email)


def _line_problems(statement: Statement) -> Iterable[str]:
    names = {center.id: center.name for center in statement.cost_centers}
    keys: set[tuple[str, str, str, str]] = set()
    for index, line in enumerate(statement.lines):
        where = f"lines[{index}]"
        yield from _line_identity_problems(where, line, names)
        yield from _line_number_problems(where, line, statement.components)
        yield from _carried_problems(where, line, statement)
        key = (line.cost_center_id, line.team, line.assistant_id, line.allocation)
        if key in keys:
            yield (
                f"{where}: a second line for (cost center, team, assistant, allocation) = {key}; "
                "merge them in allocation"
            )
        keys.add(key)


def _line_identity_problems(
    where: str, line: ChargebackLine, names: dict[str, str]
) -> Iterable[str]:
    unallocated = line.allocation.startswith("unallocated:")
    if line.cost_center_id == UNALLOCATED:
        if not unallocated and not line.is_correction:
            yield (
                f"{where}.allocation: {line.allocation!r} on an {UNALLOCATED} line; use"
                " unallocated:<reason> (or correction:<YYYY-MM> for a correction of one)"
            )
    elif line.cost_center_id not in names:
        yield (
            f"{where}.cost_center_id: {line.cost_center_id!r} is not a configured cost center "
            f"(known: {', '.join(sorted(names)) or 'none'})"
        )
    elif unallocated:
        yield f"{where}.cost_center_id: an unallocated line must use {UNALLOCATED!r}"
    elif line.cost_center_name != names[line.cost_center_id]:
        yield (
            f"{where}.cost_center_name: {line.cost_center_name!r} differs from the configured "
            f"name {names[line.cost_center_id]!r}"
        )
    if not ALLOCATION.fullmatch(line.allocation):
        yield (
            f"{where}.allocation: {line.allocation!r} is not direct, shared:<pool>,"
            " unallocated:<reason>, correction:<YYYY-MM> or adjustment:invoice"
        )
    for field in ("cost_center_name", "team", "assistant_id", "allocation", "assistant_name"):
        yield from _text_problems(f"{where}.{field}", getattr(line, field))


def _line_number_problems(where: str, line: ChargebackLine, components: list[str]) -> Iterable[str]:
    delta = line.is_correction
    if isinstance(line.calls, bool) or not isinstance(line.calls, int):
        yield f"{where}.calls: {line.calls!r} is not an integer"
    elif line.calls < 0 and not delta:
        yield f"{where}.calls: {line.calls!r} is not a non-negative integer"
    if not _finite(line.minutes) or abs(line.minutes) >= MAX_EXACT_MONEY:
        yield f"{where}.minutes: {line.minutes!r} is not a finite Decimal below 10^13"
    elif line.minutes < 0 and not delta:
        yield f"{where}.minutes: {line.minutes!r} is negative; only a correction's minutes may be"
    if not _is_money(line.cost_usd):
        yield from _money_problems(f"{where}.cost_usd", line.cost_usd)
    if list(line.components_usd) != components:
        yield (
            f"{where}.components_usd: keys {list(line.components_usd)} differ from the statement's "
            f"components {components} (same names, same order)"
        )
    for name, amount in line.components_usd.items():
        if not _is_money(amount):
            yield from _money_problems(f"{where}.components_usd[{name!r}]", amount)


def _carried_problems(where: str, line: ChargebackLine, statement: Statement) -> Iterable[str]:
    """A correction names the earlier statement it corrects; an adjustment needs the invoice."""
    yield from _text_problems(f"{where}.corrects", line.corrects)
    if not isinstance(line.corrects, str):
        return
    if not line.is_correction:
        if line.corrects:
            yield (
                f"{where}.corrects: {line.corrects!r} on a {line.allocation!r} line; only"
                " correction:<YYYY-MM> lines correct a statement"
            )
        if line.is_adjustment and statement.invoice is None:
            yield (
                f"{where}.allocation: an {line.allocation} line but the statement has no"
                " invoice; adjustments come from the invoice tie-out with its invoice"
            )
        return
    month = line.allocation.split(":", 1)[1]
    found = CORRECTED_ID.fullmatch(line.corrects)
    if found is None or found["period"] != month:
        yield (
            f"{where}.corrects: {line.corrects!r} is not a statement id of {month}"
            f" ({{prefix}}-{month}-{{cost_center_id|ORG}}-v{{N}}); pass the corrected"
            " statement's id"
        )
    if PERIOD.fullmatch(statement.period) and month >= statement.period:
        yield (
            f"{where}.allocation: {line.allocation} in the statement of {statement.period};"
            " only an earlier month can be corrected"
        )


def _breakdown_problems(statement: Statement, *, tables: bool) -> Iterable[str]:
    known = {center.id for center in statement.cost_centers}
    for center_id in statement.breakdowns:
        if center_id not in known:
            yield f"breakdowns[{center_id!r}]: not a configured cost center"
        if tables:
            yield from table_problems(center_id, statement.breakdowns[center_id])


def table_problems(center_id: str, breakdowns: Sequence[Breakdown]) -> Iterable[str]:
    """What is wrong with one cost center's breakdown tables, named as in the statement."""
    ids: set[str] = set()
    for index, breakdown in enumerate(breakdowns):
        where = f"breakdowns[{center_id!r}][{index}]"
        if breakdown.definition_id in ids:
            yield f"{where}.definition_id: {breakdown.definition_id!r} appears twice"
        ids.add(breakdown.definition_id)
        yield from _one_breakdown_problems(where, breakdown)


def _one_breakdown_problems(where: str, breakdown: Breakdown) -> Iterable[str]:
    if not SLUG.fullmatch(breakdown.definition_id):
        yield f"{where}.definition_id: {breakdown.definition_id!r} is not a slug"
    yield from _text_problems(f"{where}.title", breakdown.title, required=True)
    if not breakdown.columns:
        yield f"{where}.columns: empty; a breakdown needs at least one column"
    for index, column in enumerate(breakdown.columns):
        yield from _text_problems(f"{where}.columns[{index}]", column, required=True)
    width = len(breakdown.columns)
    if _plain_cells([*breakdown.rows, *([breakdown.total] if breakdown.total else [])], width):
        return
    rows = [(f"{where}.rows[{index}]", row) for index, row in enumerate(breakdown.rows)]
    if breakdown.total:
        rows.append((f"{where}.total", breakdown.total))
    for row_where, row in rows:
        if len(row) != width:
            yield f"{row_where}: {len(row)} values for {width} columns"
        for column_index, value in enumerate(row):
            yield from _cell_problems(f"{row_where}[{column_index}]", value)


def _plain_cells(rows: list[list[BreakdownCell]], width: int) -> bool:
    """Whether no row and no cell has a problem, checked column by column (a large org's
    tables hold some 4 million cells): one value per column, only the exact cell types,
    amounts finite and texts short and XML-safe. Else the rows are checked cell by cell,
    which names each problem."""
    if any(len(row) != width for row in rows):
        return False
    for values in zip(*rows, strict=True):
        kinds = set(map(type, values))
        if not kinds <= PLAIN_CELL_TYPES:
            return False
        if Decimal in kinds:
            amounts = values if len(kinds) == 1 else [v for v in values if type(v) is Decimal]
            if not all(map(Decimal.is_finite, amounts)):
                return False
        if str in kinds:
            texts = values if len(kinds) == 1 else [v for v in values if type(v) is str]
            if max(map(len, texts)) > MAX_CELL_TEXT or ILLEGAL_XML.search("".join(texts)):
                return False
    return True


def _cell_problems(cell: str, value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield from _text_problems(cell, value)
    elif isinstance(value, Decimal) and not _finite(value):
        yield f"{cell}: {value!r} is not a finite number"
    elif isinstance(value, bool | datetime) or not isinstance(value, BreakdownCell):
        yield f"{cell}: {type(value).__name__} is not str, int, Decimal, date or None"


def _reconciliation_problems(statement: Statement) -> Iterable[str]:
    check = statement.reconciliation
    if check is None:
        return
    amounts = {
        "org_total_usd": check.org_total_usd,
        "shared_total_usd": check.shared_total_usd,
        "lines_total_usd": check.lines_total_usd,
        "difference_usd": check.difference_usd,
        "corrections_usd": check.corrections_usd,
        "adjustments_usd": check.adjustments_usd,
    }
    bad = [
        problem
        for name, value in amounts.items()
        for problem in _money_problems(f"reconciliation.{name}", value)
    ]
    if check.invoice_usd is not None:
        bad += _money_problems("reconciliation.invoice_usd", check.invoice_usd)
    if bad:
        yield from bad
        return
    yield from _reconciliation_invoice_problems(statement)
    if not all(_finite(line.cost_usd) for line in statement.lines):
        return
    sums = {
        "lines_total_usd": (statement.lines, "the lines add up to"),
        "corrections_usd": (
            [line for line in statement.lines if line.is_correction],
            "the correction: lines add up to",
        ),
        "adjustments_usd": (
            [line for line in statement.lines if line.is_adjustment],
            "the adjustment:invoice lines add up to",
        ),
    }
    for name, (lines, what) in sums.items():
        total = sum((line.cost_usd for line in lines), Decimal(0))
        if total != amounts[name]:
            yield (
                f"reconciliation.{name}: {amounts[name]} but {what} {total}; the statement"
                " and its reconciliation come from different data"
            )
    expected = check.lines_total_usd - check.expected_usd
    if check.difference_usd != expected:
        terms = "org − shared" + (
            " − corrections − adjustments" if check.corrections_usd or check.adjustments_usd else ""
        )
        yield f"reconciliation.difference_usd: {check.difference_usd} but lines − {terms} = {expected}"
    if not check.ok:
        yield (
            f"reconciliation: lines total {check.lines_total_usd} ≠ org total {check.org_total_usd} "
            f"+ shared {check.shared_total_usd} + corrections {check.corrections_usd} + "
            f"adjustments {check.adjustments_usd} (difference {check.difference_usd}); "
            "a statement that does not reconcile is never published"
        )


def _reconciliation_invoice_problems(statement: Statement) -> Iterable[str]:
    """The reconciliation ties to the statement's invoice, or to none when it has none."""
    check, tie = statement.reconciliation, statement.invoice
    if check is None:
        return
    recorded = (check.invoice_id, check.invoice_usd)
    if tie is None:
        if recorded != (None, None):
            yield (
                f"reconciliation.invoice_id: {check.invoice_id!r} but the statement has no"
                " invoice; set Statement.invoice from the tie-out, or leave both empty"
            )
    elif recorded != (tie.invoice_id, tie.amount_usd):
        yield (
            f"reconciliation.invoice_id/invoice_usd: {check.invoice_id!r} {check.invoice_usd}"
            f" but the statement's invoice is {tie.invoice_id!r} {tie.amount_usd}; reconcile"
            " after the tie-out"
        )


def _provenance_problems(statement: Statement) -> Iterable[str]:
    source = statement.provenance
    if source is None:
        return
    yield from _text_problems("provenance.run_id", source.run_id, required=True)
    yield from _text_problems("provenance.generated_by", source.generated_by, required=True)
    for name in ("config_sha256", "mapping_sha256"):
        value = getattr(source, name)
        if not SHA256.fullmatch(value):
            yield f"provenance.{name}: {value!r} is not a lowercase hex sha256"
    for file_name, digest in source.responses_sha256.items():
        yield from _text_problems(
            f"provenance.responses_sha256 key {file_name!r}", file_name, required=True
        )
        if not SHA256.fullmatch(digest):
            yield f"provenance.responses_sha256[{file_name!r}]: {digest!r} is not a lowercase hex sha256"


def _is_money(amount: object) -> bool:
    """The common case, checked without building messages: a finite Decimal at the cent."""
    return (
        isinstance(amount, Decimal)
        and amount.is_finite()
        and abs(amount) < MAX_EXACT_MONEY
        and amount == amount.quantize(CENT)
    )


def _money_problems(where: str, amount: object) -> Iterable[str]:
    if not isinstance(amount, Decimal):
        yield f"{where}: {amount!r} is a {type(amount).__name__}; money must be a Decimal"
    elif not _finite(amount):
        yield f"{where}: {amount!r} is not a finite amount"
    elif abs(amount) >= MAX_EXACT_MONEY:
        yield f"{where}: {amount} is too large to keep its cents in a spreadsheet"
    elif amount != amount.quantize(CENT):
        yield f"{where}: {amount} is not rounded to the cent; round in allocation, writers never round money"


def _text_problems(where: str, text: object, *, required: bool = False) -> Iterable[str]:
    if not isinstance(text, str):
        yield f"{where}: {text!r} is a {type(text).__name__}, expected text"
        return
    if required and not text.strip():
        yield f"{where}: empty"
    if len(text) > MAX_CELL_TEXT:
        yield f"{where}: {len(text)} characters, more than a spreadsheet cell holds ({MAX_CELL_TEXT})"
    found = ILLEGAL_XML.search(text)
    if found:
        yield f"{where}: control character U+{ord(found.group()):04X} cannot be stored in a workbook; remove it at the source"


def _finite(value: object) -> bool:
    return isinstance(value, Decimal) and value.is_finite()


def _aware(moment: datetime) -> bool:
    return moment.tzinfo is not None and moment.utcoffset() is not None


def _lifecycle_problems(statement: Statement) -> Iterable[str]:
    """The month's close as ``close.lifecycle.MonthState`` will read it back from the manifest."""
    if statement.status not in (DRAFT, FINAL):
        yield f"status: {statement.status!r} is not {DRAFT!r} or {FINAL!r}"
    version = statement.version
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        yield f"version: {version!r} is not a whole number >= 1"
    try:
        validate_prefix(statement.statement_prefix)
    except StatementPrefixError as error:
        yield f"statement_prefix: {error}"
    approval = {"approved_by": statement.approved_by, "approved_at": statement.approved_at}
    if statement.status == FINAL:
        for name, value in approval.items():
            if value is None:
                yield f"{name}: missing; a final statement records who approved it and when"
        if statement.approved_by is not None:
            yield from _text_problems("approved_by", statement.approved_by, required=True)
        if statement.approved_at is not None and not _aware(statement.approved_at):
            yield f"approved_at: {statement.approved_at.isoformat()} has no time zone"
    elif statement.status == DRAFT:
        approval["approved_run_id"] = statement.approved_run_id
        for name, value in approval.items():
            if value is not None:
                yield f"{name}: {value!r} on a draft; only an approved (final) statement has one"
    if statement.approved_run_id is not None:
        yield from _text_problems("approved_run_id", statement.approved_run_id, required=True)
    yield from _reason_problems(statement)


def _reason_problems(statement: Statement) -> Iterable[str]:
    reason = statement.restatement_reason
    if reason is None:
        if isinstance(statement.version, int) and statement.version > 1:
            yield (
                f"restatement_reason: missing on version {statement.version}; a restatement"
                " records why the booked version was replaced"
            )
        return
    yield from _text_problems("restatement_reason", reason, required=True)
    if statement.version == 1:
        yield "restatement_reason: given on version 1; only a restatement (version 2 on) has one"


def _invoice_problems(statement: Statement) -> Iterable[str]:
    tie = statement.invoice
    if tie is None:
        return
    yield from _text_problems("invoice.invoice_id", tie.invoice_id, required=True)
    yield from _text_problems("invoice.message", tie.message, required=True)
    amounts = {
        "amount_usd": tie.amount_usd,
        "usage_usd": tie.usage_usd,
        "difference_usd": tie.difference_usd,
    }
    bad = [
        problem
        for name, value in amounts.items()
        for problem in _money_problems(f"invoice.{name}", value)
    ]
    yield from bad
    if not bad and tie.difference_usd != tie.amount_usd - tie.usage_usd:
        yield (
            f"invoice.difference_usd: {tie.difference_usd} but amount − usage ="
            f" {tie.amount_usd - tie.usage_usd}"
        )
    if not _finite(tie.tolerance_pct) or not 0 <= tie.tolerance_pct <= 100:
        yield f"invoice.tolerance_pct: {tie.tolerance_pct!r} is not a percentage from 0 to 100"


def _changes_problems(statement: Statement) -> Iterable[str]:
    """``changes_vs`` lists lines of this statement against an earlier version."""
    changes = statement.changes_vs
    if changes is None:
        return
    if not isinstance(statement.version, int) or not 1 <= changes.version < statement.version:
        yield (
            f"changes_vs.version: {changes.version!r} is not an earlier version than"
            f" {statement.version!r}"
        )
    lines = {line.key: line for line in statement.lines}
    seen: set[tuple[str, str, str, str]] = set()
    for index, item in enumerate(changes.lines):
        where = f"changes_vs.lines[{index}]"
        if item.old is None and item.new is None:
            yield f"{where}: neither an old nor a new line"
            continue
        if item.old is not None and item.new is not None and item.old.key != item.new.key:
            yield f"{where}: old line {item.old.key} and new line {item.new.key} differ in key"
        if item.key in seen:
            yield f"{where}: {item.key} is listed twice"
        seen.add(item.key)
        current = lines.get(item.key)
        if item.new is not None and current != item.new:
            yield f"{where}.new: {item.key} is not a line of this statement as it stands"
        if item.new is None and current is not None:
            yield f"{where}: {item.key} is listed as removed but the statement has it"
