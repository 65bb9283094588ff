"""Whether each row of a result keeps the promises of the query it answers.

A success status and a body that matches the spec still do not make numbers bookable.
:func:`check_results` holds every row to its query — each group key present with a
plain value, each aggregate present, numeric, finite and not negative — and the pipeline
applies it to every batch it keeps, fresh from the API or read back from storage.
Nothing here needs HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from itertools import chain, compress, repeat
from math import copysign, isfinite
from operator import itemgetter
from typing import Any

from vapi_chargeback.analytics.decode import json_kind
from vapi_chargeback.analytics.errors import UnusableResponseError
from vapi_chargeback.analytics.models import DATE_KEY, AnalyticsQuery, AnalyticsQueryResult
from vapi_chargeback.analytics.numbers import InvalidNumberError, to_decimal

MAX_REPORTED_PROBLEMS = 10
"""An error message lists this many problems; one broken column breaks every row alike."""
_SCALAR_TYPES = (str, bool, int, Decimal)
_MISSING = object()


def result_problems(query: AnalyticsQuery, result: AnalyticsQueryResult) -> list[str]:
    """What in ``result`` breaks the promises of ``query``, one sentence per problem (capped).

    Every row must carry each group key (``groupBy`` names, variable-value keys, and
    ``date`` with a ``step``) with a plain value or null — a row without its key would be
    charged to nobody — and every aggregate under its key: ``count`` a whole number,
    ``sum``/``avg``/``min``/``max`` a finite number or null (``min``/``max`` of ``id`` a
    string), ``history`` a list of points with such values. No aggregate the API offers
    can be negative, so a negative one is corruption, not a refund.
    """
    groups, aggregates = _promises(query)
    if _plainly_good(result.result, groups, aggregates):
        return []
    problems: list[str] = []
    for index, row in enumerate(result.result):
        where = f"{query.name!r} row {index}"
        for key in groups:
            value = row.get(key, _MISSING)
            if value is _MISSING:
                problems.append(f"{where}: no group key {key!r} (the query groups by it)")
            elif value is not None and not isinstance(value, _SCALAR_TYPES):
                problems.append(
                    f"{where}: group key {key!r} is a JSON {json_kind(value)}, not a plain value"
                )
        for key, operation, column in aggregates:
            value = row.get(key, _MISSING)
            if type(value) is Decimal and value.is_finite() and value >= 0 and operation != "count":
                continue
            if type(value) is int and value >= 0:
                continue
            problem = _aggregate_problem(value, operation, column, f"{where}.{key}")
            if problem:
                problems.append(problem)
        if len(problems) > MAX_REPORTED_PROBLEMS:
            break
    return problems


def roughly_good(query: AnalyticsQuery, result: AnalyticsQueryResult) -> bool:
    """Whether ``result``, decoded with its fractions as ``float`` (``iter_json_array(rough=
    True)``), is certainly fine: True only where :func:`result_problems` of the same
    element decoded exactly finds nothing. A ``float`` stands for the ``Decimal`` of the same
    text, which has its sign and is always finite, so the rules read the same; anything
    else (a signed or overflowed ``float`` included) is False, and the caller checks the
    exact decoding. Fractions as ``float`` decode a third faster and check faster than
    ``Decimal`` (the fetch of a 5M-call month decodes 1.9 GB).
    """
    groups, aggregates = _promises(query)
    return _plainly_good(result.result, groups, aggregates, rough=True)


def _promises(query: AnalyticsQuery) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The group keys every row must carry, and (key, operation, column) per aggregate."""
    groups: list[str] = [
        *(query.group_by or ()),
        *(item.key for item in query.group_by_variable_value or ()),
    ]
    if query.time_range is not None and query.time_range.step is not None:
        groups.append(DATE_KEY)
    aggregates: list[tuple[str, str, str]] = [
        (operation.result_key, operation.operation, operation.column)
        for operation in query.operations
    ]
    return groups, aggregates


def _plainly_good(
    rows: list[dict[str, Any]],
    groups: list[str],
    aggregates: Sequence[tuple[str, str, str]],
    rough: bool = False,
) -> bool:
    """Whether every row is fine by the rules of :func:`result_problems`, decided in C
    (``map``, ``set``, ``min``) over all values of like columns at once rather than a row at
    a time in Python.

    True only when each group key holds only plain values and each aggregate only
    non-negative ``int``s (and, but for counts, finite, unsigned ``Decimal``s) — what a
    good JSON body decodes to. Anything else, a missing key or a ``-0.0`` included, is
    left to the row-by-row check, which also words the problem; so both paths refuse
    exactly the same rows.
    """
    counts = [key for key, operation, _ in aggregates if operation == "count"]
    numbers = [key for key, operation, _ in aggregates if operation != "count"]
    plain, number_types = (_ROUGH_PLAIN_TYPES, _ROUGH_NUMBER_TYPES) if rough else _EXACT
    try:
        if groups and not set(map(type, _values(rows, groups))) <= plain:
            return False
        if counts:
            values = _values(rows, counts)
            if not set(map(type, values)) <= _COUNT_TYPES or (values and min(values) < 0):
                return False
        if numbers:
            values = _values(rows, numbers)
            types = set(map(type, values))
            if not types <= number_types:
                return False
            mixed = len(types) > 1
            if float in types and not _floats_good(
                list(compress(values, map(_is_float, values))) if mixed else values
            ):
                return False
            if Decimal in types:
                decimals = list(compress(values, map(_is_decimal, values))) if mixed else values
                if any(map(Decimal.is_signed, decimals)) or not all(
                    map(Decimal.is_finite, decimals)
                ):
                    return False
            if int in types:
                whole = list(compress(values, map(_is_int, values))) if mixed else values
                if min(whole) < 0:
                    return False
    except KeyError:
        return False
    return True


def _values(rows: list[dict[str, Any]], keys: list[str]) -> list[Any]:
    """The values of ``keys`` in every row, in one flat list (``KeyError`` if one is missing)."""
    if len(keys) == 1:
        return list(map(itemgetter(keys[0]), rows))
    return list(chain.from_iterable(map(itemgetter(*keys), rows)))


def _floats_good(floats: list[float]) -> bool:
    """Whether no ``float`` is signed and their sum is finite, so each is (a fraction too big
    for a float is ``inf``; a sum too big is merely False, and the exact check decides).

    ``min`` compares in C; only a least value of zero, which ``-0.0`` equals, needs the
    sign bit of every value read (``copysign``) — rare, a whole zero is written ``0``."""
    least = min(floats)
    if least < 0 or (least == 0 and min(map(copysign, repeat(1.0), floats)) < 0):
        return False
    return isfinite(sum(floats))


_is_decimal = Decimal.__instancecheck__
_is_int = int.__instancecheck__
_is_float = float.__instancecheck__
_PLAIN_TYPES = frozenset({str, bool, int, Decimal, type(None)})
_COUNT_TYPES = frozenset({int})
_NUMBER_TYPES = frozenset({int, Decimal})
_EXACT = (_PLAIN_TYPES, _NUMBER_TYPES)
_ROUGH_PLAIN_TYPES = _PLAIN_TYPES | {float}
_ROUGH_NUMBER_TYPES = _NUMBER_TYPES | {float}


def check_results(
    queries: Sequence[AnalyticsQuery],
    results: Sequence[AnalyticsQueryResult],
    *,
    request: str,
    status_code: int | None = None,
) -> None:
    """Raise :class:`ResponseError` listing what in ``results`` breaks ``queries`` (same order)."""
    problems = [
        problem
        for query, result in zip(queries, results, strict=True)
        for problem in result_problems(query, result)
    ]
    if problems:
        raise unusable_results_error(problems, request=request, status_code=status_code)


def unusable_results_error(
    problems: list[str], *, request: str, status_code: int | None
) -> UnusableResponseError:
    """The one error for rows that break their queries, whichever path found them."""
    return UnusableResponseError(
        f"results that break what the queries asked for: {listed_problems(problems)}. Nothing of "
        "this batch was used; rerun the task, and report it with the raw response if it repeats.",
        request=request,
        status_code=status_code,
    )


def _aggregate_problem(value: object, operation: str, column: str, where: str) -> str | None:
    if value is _MISSING:
        return f"{where}: missing ({operation} of {column} was asked for)"
    if operation == "history":
        if not isinstance(value, list):
            return f"{where}: a JSON {json_kind(value)} where a history (a list of points) belongs"
        for position, point in enumerate(value):
            inner = point.get("value", _MISSING) if isinstance(point, dict) else _MISSING
            problem = _aggregate_problem(inner, "sum", column, f"{where}[{position}].value")
            if problem:
                return problem
        return None
    if operation in ("min", "max") and column == "id":
        return (
            None if value is None or isinstance(value, str) else f"{where}: {value!r} is not an id"
        )
    if value is None and operation != "count":
        return None
    try:
        number = to_decimal(value, field=where)
    except InvalidNumberError as error:
        return str(error)
    if number is None:
        return f"{where}: null where a count belongs"
    if number < 0:
        return f"{where}: {number} is negative; no {operation} of {column} can be"
    if operation == "count" and number != number.to_integral_value():
        return f"{where}: {number} is not a whole count"
    return None


def listed_problems(problems: list[str]) -> str:
    """The first problems joined for a message, and how many more there were."""
    shown = "; ".join(problems[:MAX_REPORTED_PROBLEMS])
    more = len(problems) - MAX_REPORTED_PROBLEMS
    return f"{shown}; … and more" if more > 0 else shown
