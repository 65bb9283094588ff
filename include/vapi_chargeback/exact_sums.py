"""What the month's rows add up to before anything is rounded, and how parts of it merge.

Allocation is two phases (``allocate.py``): rows are summed *exactly* into lines, successful
calls, daily costs and breakdown groups; then everything is rounded at once, over all
lines. Only the first phase grows with the rows, so it is the one a sharded run spreads:
each shard sums the rows of its own stored batches into an :class:`ExactSums`, writes it to the run
folder (:func:`dumps`), and the merge adds the shards together (:meth:`ExactSums.add`)
before rounding. Exact sums of exact values do not depend on the order they are added
in (the ``Decimal`` context traps any rounding, and a sum's exponent is the least of its
terms'), so the merged sums — and every byte rounded from them — are the same whatever
the shard count.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from itertools import compress
from operator import itemgetter
from typing import Any, cast

from vapi_chargeback.attribution import DIRECT, PRECEDENCE, Attribution, ChargedBy
from vapi_chargeback.breakdowns import GroupKey
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.shard_groups import group_order, key_part, read_part
from vapi_chargeback.split import exact_context

LineKey = tuple[str, str, str, str]
"""(cost center, team, assistant, allocation): what one line sums."""
PieceKey = tuple[LineKey, LineKey]
"""(atom, line): the rows of one line that, without mapping rules, would form the atom's
line (``allocate._rounded_lines``). A piece's rows may lie in several shards' batches
(one assistant's days are in many batches): the merge adds them like any other sum."""
FORMAT = 1
"""Version of the file :func:`dumps` writes; :func:`loads` refuses any other."""
ZERO = Decimal(0)


class ExactSumsError(PermanentError, ValueError):
    """A shard's exact sums file that cannot be read back; names the file and what is wrong."""


@dataclass
class ExactSums:
    """Exact sums of a set of rows, ready to merge with others and to round."""

    measures: list[str]
    """The core measures each piece sums, in order (calls, seconds, cost, components)."""
    pieces: dict[PieceKey, list[Decimal]] = field(default_factory=dict)
    charged: dict[LineKey, ChargedBy] = field(default_factory=dict)
    """Per line, the first rule (:data:`PRECEDENCE`) that charged any of its rows."""
    successes: dict[LineKey, Decimal] = field(default_factory=dict)
    days: dict[str, dict[date, Decimal]] = field(default_factory=dict)
    """Cost center → local day → cost of its direct rows."""
    groups: list[dict[GroupKey, list[Decimal]]] = field(default_factory=list)
    """Per definition of the plan (plan order): group key → exact sums of its measures."""

    def add_lines(
        self,
        attributions: Sequence[Attribution],
        atoms: Sequence[Attribution] | None,
        values: Sequence[tuple[Decimal | int, ...]],
        positions: Sequence[int],
    ) -> None:
        """Add core rows: row ``i``, attributed ``attributions[i]`` (and, under mapping rules,
        ``atoms[i]`` without them), sums ``values[i][p]`` for each ``p`` of ``positions``
        into its piece, and its rule into its line's ``charged``.

        Rows are bucketed by piece in C (by the identity of their attribution objects, which
        the :class:`Attributor` shares between rows), then each piece's columns, transposed
        in C, are added by ``sum``: the very additions a row-at-a-time loop makes, in its
        order, with the pieces created in the order of their first rows.
        """
        if atoms is None:
            idents: list[Any] = list(map(id, attributions))
            distinct: dict[Any, Any] = dict(zip(idents, attributions, strict=True))
        else:
            idents = list(zip(map(id, attributions), map(id, atoms), strict=True))
            distinct = dict(zip(idents, zip(attributions, atoms, strict=True), strict=True))
        buckets: dict[PieceKey, list[tuple[Decimal | int, ...]]] = {}
        bucket_of: dict[Any, list[tuple[Decimal | int, ...]]] = {}
        charged = self.charged
        for ident, found in distinct.items():
            attribution, atom = (found, found) if atoms is None else found
            key = line_key(attribution)
            piece = (key, key) if atom is attribution else (line_key(atom), key)
            bucket_of[ident] = buckets.setdefault(piece, [])
            held = charged.get(key)
            rule = attribution.charged_by
            if held is None:
                charged[key] = rule
            elif rule != held:
                charged[key] = min(held, rule, key=PRECEDENCE.index)
        _append_each(map(bucket_of.__getitem__, idents), values)
        pick = _picker(positions)
        zeros = [ZERO] * len(positions)
        pieces = self.pieces
        for piece, rows in buckets.items():
            sums = pieces.get(piece)
            if sums is None:
                sums = pieces[piece] = list(zeros)
            sums[:] = map(sum, pick(tuple(zip(*rows, strict=True))), sums)

    def add_successes(
        self,
        attributions: Sequence[Attribution],
        succeeded: Sequence[bool],
        values: Sequence[tuple[Decimal | int, ...]],
        position: int,
    ) -> None:
        """Add the successful calls (``values[i][position]``) of each row that ``succeeded``
        to its line (:func:`_sum_by_line`)."""
        chosen = list(compress(attributions, succeeded))
        amounts = map(itemgetter(position), compress(values, succeeded))
        _sum_by_line(self.successes, chosen, amounts)

    def add_days(
        self,
        attributions: Sequence[Attribution],
        days: Sequence[date],
        values: Sequence[tuple[Decimal | int, ...]],
        position: int,
    ) -> None:
        """Add the cost (``values[i][position]``) of each direct row to its cost center's day."""
        idents = list(map(id, attributions))
        center_of = {
            ident: attribution.cost_center_id if attribution.allocation == DIRECT else None
            for ident, attribution in dict(zip(idents, attributions, strict=True)).items()
        }
        keys = list(zip(map(center_of.__getitem__, idents), days, strict=True))
        costs = map(itemgetter(position), values)
        for (center, day), bucket in _buckets(keys, costs).items():
            if center is not None:
                into = self.days.setdefault(center, {})
                into[day] = sum(bucket, into.get(day, ZERO))

    def add(self, other: ExactSums) -> None:
        """Add ``other``'s sums to these (they must come from the same plan)."""
        if other.measures != self.measures or len(other.groups) != len(self.groups):
            raise ExactSumsError(
                f"cannot merge sums of measures {other.measures} and {len(other.groups)}"
                f" definitions into {self.measures} and {len(self.groups)}: not the same plan"
            )
        with exact_context():
            for piece, values in other.pieces.items():
                mine = self.pieces.get(piece)
                if mine is None:
                    self.pieces[piece] = list(values)
                    continue
                for position, value in enumerate(values):
                    mine[position] += value
            charged = self.charged
            for key, rule in other.charged.items():
                held = charged.get(key)
                if held is None:
                    charged[key] = rule
                elif held != rule:
                    charged[key] = min(held, rule, key=PRECEDENCE.index)
            for key, value in other.successes.items():
                self.successes[key] = self.successes.get(key, ZERO) + value
            for center, days in other.days.items():
                into = self.days.setdefault(center, {})
                for day, cost in days.items():
                    into[day] = into.get(day, ZERO) + cost
            for mine_groups, their_groups in zip(self.groups, other.groups, strict=True):
                for group, values in their_groups.items():
                    sums = mine_groups.get(group)
                    if sums is None:
                        mine_groups[group] = list(values)
                        continue
                    for position, value in enumerate(values):
                        sums[position] += value


def dumps(sums: ExactSums) -> bytes:
    """The sums as JSON, every ``Decimal`` as its exact text, in a fixed order."""
    document = {
        "format": FORMAT,
        "measures": sums.measures,
        "pieces": [
            [*atom, *line, [str(v) for v in values]]
            for (atom, line), values in sorted(sums.pieces.items())
        ],
        "charged": [[*key, rule] for key, rule in sorted(sums.charged.items())],
        "successes": [[*key, str(value)] for key, value in sorted(sums.successes.items())],
        "days": {
            center: [[day.isoformat(), str(cost)] for day, cost in sorted(days.items())]
            for center, days in sorted(sums.days.items())
        },
        "groups": [
            [[[key_part(part) for part in key], [str(v) for v in values]] for key, values in g]
            for g in (sorted(groups.items(), key=group_order) for groups in sums.groups)
        ],
    }
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def loads(raw: bytes, source: str) -> ExactSums:
    """Sums written by :func:`dumps`; :class:`ExactSumsError` naming ``source`` otherwise."""
    try:
        document = json.loads(raw)
        if document.get("format") != FORMAT:
            raise ValueError(f"format {document.get('format')!r}, expected {FORMAT}")
        sums = ExactSums(measures=[str(m) for m in document["measures"]])
        for *key, values in document["pieces"]:
            if len(key) != 8 or not _TEXT.issuperset(map(type, key)):
                raise ValueError(f"piece {key}: not eight texts")
            piece = ((key[0], key[1], key[2], key[3]), (key[4], key[5], key[6], key[7]))
            sums.pieces[piece] = _decimals(values)
        for center, team, assistant, allocation, rule in document["charged"]:
            if rule not in PRECEDENCE:
                raise ValueError(f"line {(center, team, assistant)}: unknown charged_by {rule!r}")
            sums.charged[(center, team, assistant, allocation)] = cast(ChargedBy, rule)
        for center, team, assistant, allocation, value in document["successes"]:
            sums.successes[(center, team, assistant, allocation)] = _decimal(value)
        for center, days in document["days"].items():
            sums.days[center] = {date.fromisoformat(d): _decimal(c) for d, c in days}
        sums.groups = [
            {tuple(map(read_part, key)): _decimals(values) for key, values in g}
            for g in document["groups"]
        ]
    except (ValueError, KeyError, TypeError, AttributeError, InvalidOperation) as error:
        raise ExactSumsError(
            f"{source}: not a shard's exact sums ({type(error).__name__}: {error}); clear the"
            " shard's task so it writes them again"
        ) from None
    return sums


_TEXT = frozenset({str})
"""What a key part and a sum are written as: checked in C (``issuperset`` of their types)."""


def _decimals(texts: object) -> list[Decimal]:
    """A list of numbers written as text, each checked like :func:`_decimal` (in C where it can)."""
    if type(texts) is not list or not _TEXT.issuperset(map(type, texts)):
        raise ValueError(f"{texts!r} is not a list of numbers written as text")
    values = list(map(Decimal, texts))
    if not all(map(Decimal.is_finite, values)):
        raise ValueError(f"{texts!r} holds a number that is not finite")
    return values


def _decimal(text: object) -> Decimal:
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a number written as text")
    value = Decimal(text)
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    return value


def line_key(attribution: Attribution) -> LineKey:
    """The line an attributed row is summed into."""
    return (
        attribution.cost_center_id,
        attribution.team,
        attribution.assistant_id,
        attribution.allocation,
    )


def _append_each(buckets: Iterable[list[Any]], items: Iterable[Any]) -> None:
    """``bucket.append(item)`` for each pair, in C (a zero-length deque drains the map)."""
    deque(map(list.append, buckets, items), maxlen=0)


def _buckets(keys: Sequence[Any], items: Iterable[Any]) -> dict[Any, list[Any]]:
    """Key → its items, in their order; keys in the order of their first item. Made in C
    but for one dict entry per distinct key."""
    buckets: dict[Any, list[Any]] = {key: [] for key in dict.fromkeys(keys)}
    _append_each(map(buckets.__getitem__, keys), items)
    return buckets


def _sum_by_line(
    into: dict[LineKey, Decimal], attributions: list[Attribution], amounts: Iterable[Decimal | int]
) -> None:
    """Add each amount to the sum of its attribution's line in ``into`` (from ``ZERO``), lines
    new to ``into`` in the order of their first rows. Bucketed by the identity of the
    attribution objects (an ``int`` hashes in C; a line key, four texts, hashes anew each
    time), each object's amounts in row order, an object's after another's of the same
    line: not row order, but the same sum, as every caller adds in the exact context
    (``split.exact_context``: any rounding raises), where a sum has one value and the least
    exponent of its terms whatever their order."""
    idents = list(map(id, attributions))
    distinct = dict(zip(idents, attributions, strict=True))
    for ident, bucket in _buckets(idents, amounts).items():
        key = line_key(distinct[ident])
        into[key] = sum(bucket, into.get(key, ZERO))


def _picker(positions: Sequence[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """The items at ``positions`` of a sequence, as a tuple, in one C call."""
    if len(positions) == 1:
        position = positions[0]
        return lambda items: (items[position],)
    return itemgetter(*positions)
