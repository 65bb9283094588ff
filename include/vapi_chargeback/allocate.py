"""Turn the core query's rows into chargeback lines that add up exactly.

Each row is one (time bucket, assistant, variable value) group, its bucket a local day or
a stretch of days over which the mapping does not change (``plan.py``), attributed to a
cost center by the rules of ``attribution.py``. Rows are summed exactly per (cost center,
team, assistant, allocation). Only then is anything rounded: each column once, over all
lines together, with largest remainder, so the lines add up to the rounded column total
to the cent. Shared pools are split the same way. The breakdowns of ``breakdowns.py``
read the same attributed rows as they stream by.

Mapping rules only relabel rows that would otherwise be unallocated (or charged by a
variable naming the rule's cost center), so they must not move a cent elsewhere: rounding
runs over *atoms*, each the line a row group would form without rules, in that run's
order, and a line is the sum of its rounded atoms (:func:`_rounded_lines`). Without rules
atoms and lines are the same.

Two more figures come from the same pass: each usage line's successful calls (from the
plan's success query) and each cost center's daily cost (from its day rows of the core
shape), rounded against the cost center's direct lines so the days add up to them.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from operator import itemgetter, methodcaller

from vapi_chargeback.analytics.models import AnalyticsQueryResult
from vapi_chargeback.attribution import (
    DIRECT,
    REASONS,
    AnalyticsResultError,
    Attributor,
    ChargedBy,
    QueryColumns,
    attributed_columns,
    attributions,
)
from vapi_chargeback.breakdowns import (
    BreakdownBuilder,
    BreakdownTables,
    GroupKey,
    round_to_statement,
)
from vapi_chargeback.config import ChargebackConfig, SharedPool
from vapi_chargeback.exact_sums import ExactSums, ExactSumsError, LineKey, PieceKey
from vapi_chargeback.mapping import AssistantMapping
from vapi_chargeback.mapping_rules import RuleBook
from vapi_chargeback.money import CENT, MINUTES_QUANTUM, from_units_each
from vapi_chargeback.plan import SUCCESS_KEY, Plan
from vapi_chargeback.process_memory import paused_gc
from vapi_chargeback.split import (
    CALL_QUANTUM,
    exact_context,
    largest_remainder,
    round_half_up_ratio,
    split_exact,
    units_over,
)
from vapi_chargeback.statement import ChargebackLine, CostCenterInfo, Statement

ZERO = Decimal(0)
UNALLOCATED_NAME = "Unallocated"
SECONDS_PER_MINUTE = 60
NO_ASSISTANT_LINE = "unallocated:no-assistant"
RESPREAD_NOTE = (
    "Re-spreads the calls without an assistant: their calls, minutes and every cost component"
    " move with their cost, each split with the same shares (largest remainder: calls whole,"
    " minutes to 0.01, money to the cent), so every column still adds up to the org total."
)

log = logging.getLogger(__name__)


def allocate(
    config: ChargebackConfig,
    mapping: AssistantMapping,
    plan: Plan,
    results: Mapping[str, AnalyticsQueryResult],
    rules: RuleBook | None = None,
) -> Statement:
    """The month's statement, without reconciliation and provenance (added by the caller).

    Its ``breakdowns`` hold every owner's query definitions, attributed with the same rules.
    Each query's rows are read once and aggregated as they stream by. The month sees its own
    config (:meth:`ChargebackConfig.for_period`): a cost center that ended before the month
    gets no variable-value charge, no share of a pool and no statement; within the month of
    its ``valid_to`` it shares that month's pools, but variable values name it only until
    that day.

    The two phases, :func:`exact_sums` then :func:`rounded_statement`; a sharded run
    (``sharded.py``) runs the first per shard of assistants and merges before the second.
    """
    return rounded_statement(config, plan, exact_sums(config, mapping, plan, results, rules))


def exact_sums(
    config: ChargebackConfig,
    mapping: AssistantMapping,
    plan: Plan,
    results: Mapping[str, AnalyticsQueryResult],
    rules: RuleBook | None = None,
    *,
    only: Collection[str] | None = None,
) -> ExactSums:
    """The exact phase: every row of ``results`` attributed and summed, nothing rounded.

    Sums of any split of the rows, added together (:meth:`ExactSums.add`), are these
    sums: a row's contribution depends on the row alone. ``only`` names the plan's queries
    this part sums (a shard's batches); ``None`` is every query, each one required.
    """
    config = config.for_period(plan.period)
    core_measures = _core_measures(plan)
    measures = _query_measures(plan)
    builder = BreakdownBuilder(plan, config.cost_center_ids, measures)
    attributor = Attributor(config, mapping, rules)
    bare = Attributor(config, mapping) if rules is not None and rules.rules else None
    core = [measures[plan.core_query].index(m) for m in core_measures]
    success_calls = measures[plan.success_query].index("calls")
    daily_cost = measures[plan.daily_cost_query].index("cost")
    read_by = _centers_reading(plan)
    exact = ExactSums(measures=core_measures)
    with exact_context():
        for name, wanted in measures.items():
            for part in plan.parts(name):
                if only is not None and part not in only:
                    continue
                columns = attributed_columns(
                    config, mapping, plan, results, part, wanted, attributor=attributor
                )
                _to_breakdowns(builder, name, columns, read_by.get(name, frozenset()))
                if name == plan.core_query:
                    atoms = (
                        None
                        if bare is None
                        else attributions(bare, columns.pairs, columns.days, columns.horizon)
                    )
                    exact.add_lines(columns.attributions, atoms, columns.values, core)
                if name == plan.success_query:
                    succeeded = list(map(_succeeded, map(_SUCCESS, columns.rows)))
                    exact.add_successes(
                        columns.attributions, succeeded, columns.values, success_calls
                    )
                if name == plan.daily_cost_query:
                    exact.add_days(columns.attributions, columns.days, columns.values, daily_cost)
    exact.groups = builder.exact_groups()
    return exact


def rounded_statement(config: ChargebackConfig, plan: Plan, sums: ExactSums) -> Statement:
    """The round phase: the statement from the month's exact sums, every column rounded once
    over all lines, then shared pools, breakdowns and daily cost, as :func:`allocate` does."""
    config = config.for_period(plan.period)
    core_measures = _core_measures(plan)
    if sums.measures != core_measures:
        raise ExactSumsError(
            f"exact sums of measures {sums.measures} do not belong to this plan"
            f" ({core_measures}); clear the run's allocate tasks"
        )
    order = _LineOrder(config)
    with paused_gc():
        lines = _rounded_lines(config, plan, sums.pieces, sums.successes, sums.charged)
    direct = _direct_totals(lines, plan.components)
    lines, notes = _with_shared_pools(config, plan, lines)
    lines.sort(key=lambda line: order.key(*_line_key(line)))
    return Statement(
        period=plan.period.label,
        timezone=plan.period.timezone,
        period_start=plan.period.start,
        period_end=plan.period.end,
        currency=config.currency,
        components=list(plan.components),
        cost_centers=[CostCenterInfo(c.id, c.name, c.owner_email) for c in config.cost_centers],
        lines=lines,
        org_name=config.org.name,
        breakdowns=breakdown_tables(config, plan, sums.groups, direct),
        pool_notes=notes,
        daily_cost_usd=_daily_cost(sums.days, direct),
    )


def breakdown_tables(
    config: ChargebackConfig,
    plan: Plan,
    groups: Sequence[dict[GroupKey, list[Decimal]]],
    direct: Mapping[str, Mapping[str, Decimal]],
) -> BreakdownTables:
    """The breakdown tables of :func:`rounded_statement` (rounded when looked up) from the
    exact groups and the direct lines' totals (``BreakdownTables.totals``): what a sharded
    merge's breakdowns worker makes again, sent only the totals
    (``breakdown_files.forked_writer``). ``config`` is the month's (``for_period``)."""
    builder = BreakdownBuilder(plan, config.cost_center_ids, _query_measures(plan))
    builder.use_groups(groups)
    return builder.tables(direct)


def _core_measures(plan: Plan) -> list[str]:
    """What each line sums, in order: calls, seconds, cost, then the components."""
    return ["calls", "seconds", "cost", *plan.components]


def _query_measures(plan: Plan) -> dict[str, list[str]]:
    """Query name → the measures allocation reads from its rows (core, definitions, success
    count, daily cost), in a fixed order: the order of each row's ``values``."""
    needed: dict[str, set[str]] = {plan.core_query: set(_core_measures(plan))}
    for definition in plan.definitions:
        needed.setdefault(definition.query, set()).update(definition.aliases)
    needed.setdefault(plan.success_query, set()).add("calls")
    needed.setdefault(plan.daily_cost_query, set()).add("cost")
    return {name: sorted(wanted) for name, wanted in needed.items()}


def _centers_reading(plan: Plan) -> dict[str, frozenset[str]]:
    """Query name → the cost centers with a definition reading it: only their rows reach
    the breakdowns (:meth:`BreakdownBuilder.add` passes over any other)."""
    centers: dict[str, set[str]] = {}
    for definition in plan.definitions:
        centers.setdefault(definition.query, set()).add(definition.cost_center_id)
    return {query: frozenset(ids) for query, ids in centers.items()}


def _to_breakdowns(
    builder: BreakdownBuilder, query: str, columns: QueryColumns, centers: frozenset[str]
) -> None:
    """Hand the builder the rows of ``query`` as columns, when one of its definitions reads
    the query (the builder picks out the rows of the cost centers that do)."""
    if not centers:
        return
    builder.add_rows(query, columns.days, columns.attributions, columns.rows, columns.values)


_SUCCESS = methodcaller("get", SUCCESS_KEY)


def _succeeded(value: object) -> bool:
    """``analysis.successEvaluation`` as the API answers a pass: the text ``"true"`` (a JSON
    ``true`` from a replayed record means the same)."""
    return value is True or value == "true"


def _direct_totals(
    lines: Sequence[ChargebackLine], components: Sequence[str]
) -> dict[str, dict[str, Decimal]]:
    """Cost center → its direct lines' columns summed (``calls``, ``minutes``, ``cost`` and
    each component): the totals its breakdowns and daily cost are rounded against."""
    totals: dict[str, dict[str, Decimal]] = {}
    for line in lines:
        if line.allocation != DIRECT:
            continue
        center = totals.setdefault(
            line.cost_center_id, dict.fromkeys(["calls", "minutes", "cost", *components], ZERO)
        )
        center["calls"] += line.calls
        center["minutes"] += line.minutes
        center["cost"] += line.cost_usd
        for component in components:
            center[component] += line.components_usd[component]
    return totals


def _daily_cost(
    days: Mapping[str, Mapping[date, Decimal]], direct: Mapping[str, Mapping[str, Decimal]]
) -> dict[str, list[tuple[date, Decimal]]]:
    """Cost center → (local day, cost) in day order, rounded against its direct lines' cost
    (largest remainder), so a chart's days add up to the statement to the cent."""
    daily: dict[str, list[tuple[date, Decimal]]] = {}
    for center, totals in direct.items():
        exact = sorted(days.get(center, {}).items())
        rounded = round_to_statement([cost for _, cost in exact], totals["cost"])
        daily[center] = [(day, cost) for (day, _), cost in zip(exact, rounded, strict=True)]
    return daily


def _rounded_lines(
    config: ChargebackConfig,
    plan: Plan,
    sums: Mapping[PieceKey, Sequence[Decimal]],
    successes: Mapping[LineKey, Decimal],
    charged: Mapping[LineKey, ChargedBy],
) -> list[ChargebackLine]:
    """The direct and unallocated lines, in statement order, from exact per-piece sums
    (``calls``, ``seconds``, ``cost`` and each component, in that order).

    Each column is rounded once over all *atoms* (largest remainder, in line order), so the
    atoms add up to its rounded total; an atom whose rows went to several lines is split
    among them to its rounded amount (each part its exact value rounded down or up); a line
    is the sum of its parts. The atoms, their exact sums and their order are those of the
    same month without mapping rules, so adding rules changes no line they leave alone, and
    a rule line is the sum of the rounded lines it replaced. Without rules every atom is one
    line, rounded as a whole.

    A direct line's rule is the one that charged its rows; rows of several rules (say a CSV
    row for part of the month and a rule with the same cost center and team for the rest)
    show the first in the order rules are tried (:data:`PRECEDENCE`).
    """
    order = _LineOrder(config)
    pieces = list(sums)
    line_keys = {line for _, line in pieces} | {atom for atom, _ in pieces}
    line_order = {key: order.key(key[0], key[3], key[1], key[2]) for key in line_keys}.__getitem__
    atoms: dict[LineKey, list[int]] = {}
    for index in sorted(range(len(pieces)), key=lambda i: line_order(pieces[i][1])):
        atoms.setdefault(pieces[index][0], []).append(index)
    atom_pieces = [atoms[atom] for atom in sorted(atoms, key=line_order)]
    lines_of = _LinesOf([piece[1] for piece in pieces], atom_pieces)
    measures = _core_measures(plan)
    columns = {"cost": ("cost", CENT), "minutes": ("seconds", MINUTES_QUANTUM)}
    columns.update({c: (c, CENT) for c in plan.components})
    rounded: dict[str, dict[LineKey, Decimal]] = {}
    for column, (measure, quantum) in columns.items():
        ratios = _ratios(sums.values(), measures.index(measure), measure == "seconds")
        exact, denominator = units_over(ratios, quantum)
        totals = lines_of.atom_totals(exact)
        amounts = largest_remainder(
            totals, denominator, round_half_up_ratio(sum(totals), denominator)
        )
        by_line = lines_of.line_units(exact, denominator, amounts)
        rounded[column] = dict(
            zip(by_line, from_units_each(by_line.values(), quantum), strict=True)
        )
    calls: dict[LineKey, Decimal] = {}
    calls_at = measures.index("calls")
    for (_, key), values in sums.items():
        calls[key] = calls.get(key, ZERO) + values[calls_at]
    names = {center.id: center.name for center in config.cost_centers}
    keys = sorted(calls, key=line_order)
    shown = {column: list(map(by_line.__getitem__, keys)) for column, by_line in rounded.items()}
    components = (
        [
            dict(zip(plan.components, amounts, strict=True))
            for amounts in zip(*(shown[c] for c in plan.components), strict=True)
        ]
        if plan.components
        else [{} for _ in keys]
    )
    return [
        ChargebackLine(
            cost_center_id=key[0],
            cost_center_name=names.get(key[0], UNALLOCATED_NAME),
            team=key[1],
            assistant_id=key[2],
            allocation=key[3],
            calls=_whole(calls[key]),
            minutes=minutes,
            cost_usd=cost,
            components_usd=parts,
            charged_by=charged[key],
            successful_calls=_whole(successes.get(key, ZERO)),
        )
        for key, minutes, cost, parts in zip(
            keys, shown["minutes"], shown["cost"], components, strict=True
        )
    ]


class _LinesOf:
    """Which pieces make each atom (in atom order) and which line each piece goes to: a
    column's atom totals, and its lines from the atoms' rounded amounts.

    Without mapping rules every atom is one piece and one line: then both are a reordering
    of a list, done in C, instead of a loop over pieces per column.
    """

    def __init__(self, piece_lines: Sequence[LineKey], atom_pieces: Sequence[list[int]]):
        self._piece_lines = piece_lines
        self._atom_pieces = atom_pieces
        self._single = all(len(indexes) == 1 for indexes in atom_pieces)
        self._order = [indexes[0] for indexes in atom_pieces] if self._single else []
        atom_lines = [piece_lines[index] for index in self._order]
        self._atom_lines = atom_lines if len(set(atom_lines)) == len(piece_lines) else None

    def atom_totals(self, exact: Sequence[int]) -> list[int]:
        if self._single:
            return list(map(exact.__getitem__, self._order))
        return [sum(map(exact.__getitem__, indexes)) for indexes in self._atom_pieces]

    def line_units(
        self, exact: Sequence[int], denominator: int, amounts: Sequence[int]
    ) -> dict[LineKey, int]:
        """Each line's units: the sum of its pieces' parts, an atom of several pieces split
        among them to its rounded amount (each its exact value rounded down or up, the extra
        units to the largest remainders, ties to the earlier piece)."""
        if self._atom_lines is not None:
            return dict(zip(self._atom_lines, amounts, strict=True))
        by_line: dict[LineKey, int] = {}
        for indexes, amount in zip(self._atom_pieces, amounts, strict=True):
            parts = (
                [amount]
                if len(indexes) == 1
                else largest_remainder([exact[i] for i in indexes], denominator, amount)
            )
            for index, part in zip(indexes, parts, strict=True):
                key = self._piece_lines[index]
                by_line[key] = by_line.get(key, 0) + part
        return by_line


def _ratios(
    sums: Iterable[Sequence[Decimal]], position: int, seconds: bool
) -> list[tuple[int, int]]:
    """Each piece's exact amount in its line column as (numerator, denominator), not
    reduced: seconds become minutes."""
    ratios = list(map(Decimal.as_integer_ratio, map(itemgetter(position), sums)))
    if seconds:
        return [(n, d * SECONDS_PER_MINUTE) for n, d in ratios]
    return ratios


def _with_shared_pools(
    config: ChargebackConfig, plan: Plan, lines: list[ChargebackLine]
) -> tuple[list[ChargebackLine], dict[str, str]]:
    """Add one ``shared:<pool>`` line per receiving cost center, in pool order; with the
    pools' notes (see :attr:`Statement.pool_notes`).

    Proportional drivers are read from the rounded direct lines, so anyone can re-check a
    split from the statement alone. A ``calls-without-assistant`` pool takes the
    ``unallocated:no-assistant`` line out and spreads all of it — calls, minutes, cost and
    components, each with the same weights — so no column loses what the line carried.
    """
    direct = [line for line in lines if line.allocation == DIRECT]
    shared: list[ChargebackLine] = []
    notes: dict[str, str] = {}
    for pool in config.shared_costs:
        if pool.source == "calls-without-assistant":
            moved = [line for line in lines if line.allocation == NO_ASSISTANT_LINE]
            lines = [line for line in lines if line.allocation != NO_ASSISTANT_LINE]
            usage = _Usage.of(moved, plan.components)
            notes[pool.name] = RESPREAD_NOTE
        else:
            usage = _Usage.of([], plan.components, cost_usd=pool.amount or Decimal(0))
        if not usage:
            continue
        centers, weights = _weights(config, pool, direct)
        if not any(weights):
            weights = [Decimal(1)] * len(centers)
            fallback = _even_fallback(pool, plan, len(centers))
            notes[pool.name] = f"{notes[pool.name]} {fallback}" if pool.name in notes else fallback
        for center, part in zip(centers, usage.split(weights), strict=True):
            if part:
                shared.append(_shared_line(config, pool, center, part))
    return lines + shared, notes


@dataclass(frozen=True)
class _Usage:
    """The columns a pool moves to its cost centers: a fixed amount is cost alone."""

    calls: int
    minutes: Decimal
    cost_usd: Decimal
    components_usd: dict[str, Decimal]

    @classmethod
    def of(
        cls,
        lines: Sequence[ChargebackLine],
        components: Sequence[str],
        cost_usd: Decimal = Decimal(0),
    ) -> _Usage:
        return cls(
            calls=sum(line.calls for line in lines),
            minutes=sum((line.minutes for line in lines), Decimal(0)),
            cost_usd=sum((line.cost_usd for line in lines), cost_usd),
            components_usd={
                c: sum((line.components_usd[c] for line in lines), Decimal(0)) for c in components
            },
        )

    def __bool__(self) -> bool:
        return bool(
            self.calls or self.minutes or self.cost_usd or any(self.components_usd.values())
        )

    def split(self, weights: Sequence[Decimal]) -> list[_Usage]:
        """One part per weight; every column split on its own, so each adds up exactly."""
        calls = split_exact(Decimal(self.calls), weights, CALL_QUANTUM)
        minutes = split_exact(self.minutes, weights, MINUTES_QUANTUM)
        cost = split_exact(self.cost_usd, weights)
        components = {c: split_exact(v, weights) for c, v in self.components_usd.items()}
        return [
            _Usage(
                calls=int(calls[i]),
                minutes=minutes[i],
                cost_usd=cost[i],
                components_usd={c: parts[i] for c, parts in components.items()},
            )
            for i in range(len(weights))
        ]


def _weights(
    config: ChargebackConfig, pool: SharedPool, direct: list[ChargebackLine]
) -> tuple[list[str], list[Decimal]]:
    centers = config.cost_center_ids
    if pool.method == "fixed":
        percentages = pool.percentages or {}
        return centers, [percentages.get(center, Decimal(0)) for center in centers]
    if pool.method == "even":
        return centers, [Decimal(1)] * len(centers)
    totals = dict.fromkeys(centers, Decimal(0))
    for line in direct:
        if pool.driver == "cost":
            totals[line.cost_center_id] += line.cost_usd
        elif pool.driver == "minutes":
            totals[line.cost_center_id] += line.minutes
        else:
            totals[line.cost_center_id] += line.calls
    return centers, [max(totals[center], Decimal(0)) for center in centers]


def _even_fallback(pool: SharedPool, plan: Plan, centers: int) -> str:
    """Say, in the run log and for the workbook, that a proportional pool had nothing to go by.

    A zero driver (``minutes`` in a month without minutes) gives no proportions; an even
    split keeps the pool booked and reconciled, and saying so lets finance re-check it.
    """
    log.warning(
        "shared pool %r is proportional to %s, but %s is zero for every cost center in %s:"
        " split evenly over its %d cost centers instead",
        pool.name,
        pool.driver,
        pool.driver,
        plan.period.label,
        centers,
    )
    return (
        f"Proportional to {pool.driver}, but {pool.driver} was zero for every cost center"
        f" this month: split evenly over the {centers} cost centers instead."
    )


def _shared_line(
    config: ChargebackConfig, pool: SharedPool, center: str, part: _Usage
) -> ChargebackLine:
    return ChargebackLine(
        cost_center_id=center,
        cost_center_name=config.cost_center(center).name,
        team="",
        assistant_id="",
        allocation=f"shared:{pool.name}",
        calls=part.calls,
        minutes=part.minutes,
        cost_usd=part.cost_usd,
        components_usd=part.components_usd,
    )


class _LineOrder:
    """Cost centers in config order then UNALLOCATED; direct, shared (pool order), unallocated."""

    def __init__(self, config: ChargebackConfig) -> None:
        self._centers = {center: i for i, center in enumerate(config.cost_center_ids)}
        kinds = [DIRECT, *(f"shared:{pool.name}" for pool in config.shared_costs)]
        kinds += [f"unallocated:{reason}" for reason in REASONS]
        self._kinds = {kind: i for i, kind in enumerate(kinds)}

    def key(
        self, center: str, allocation: str, team: str, assistant: str
    ) -> tuple[int, int, str, str]:
        return (
            self._centers.get(center, len(self._centers)),
            self._kinds.get(allocation, len(self._kinds)),
            team,
            assistant,
        )


def _line_key(line: ChargebackLine) -> tuple[str, str, str, str]:
    return (line.cost_center_id, line.allocation, line.team, line.assistant_id)


def _whole(value: Decimal) -> int:
    if value != value.to_integral_value():
        raise AnalyticsResultError(f"call count {value} is not a whole number")
    return int(value)
