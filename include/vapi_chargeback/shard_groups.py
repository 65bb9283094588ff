"""A shard's breakdown groups kept apart from its other exact sums, one definition a line,
so that the merge rounds the breakdowns one cost center at a time.

The groups are most of what a shard sums (every owner's groups by assistant and day) and,
added over all shards, more than a worker's memory at 20,000 assistants: the merge must
not hold them all. Each shard therefore writes them to ``groups-{shard}.jsonl`` beside
its exact sums, line ``i`` holding definition ``i`` of the plan (its group keys and exact
sums, in a fixed order), and the merge reads them through :class:`MergedGroups`: looking
definition ``i`` up reads line ``i`` of every shard's file and adds them, exactly and in
shard order, as ``ExactSums.add`` would. The plan lists a cost center's definitions
together and in cost center order, which is the order the breakdowns are rounded in
(``BreakdownBuilder.tables``), so each file is read once, front to back; a lookup of an
earlier line starts that file again. Before any line is used, every file is read through
once and held to the sha256 its shard recorded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from operator import add
from typing import IO, Any

from vapi_chargeback.breakdowns import GroupKey
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.process_memory import paused_gc
from vapi_chargeback.split import exact_context

StoragePath = Any
"""A ``upath.UPath`` or Airflow's ``ObjectStoragePath`` (a proxy with the same API)."""

Groups = dict[GroupKey, list[Decimal]]
READ_CHUNK = 1 << 20


class ShardGroupsError(PermanentError, ValueError):
    """A shard's groups file that does not match what its shard recorded, or cannot be read."""


def dumps_groups(groups: Sequence[Groups]) -> bytes:
    """One line per definition: ``[[key parts…, [sums as text…]], …]``, keys in a fixed order
    (days as ``{"day": …}``), so the same sums always give the same bytes."""
    lines = [
        json.dumps(
            [
                [*map(key_part, key), [str(v) for v in values]]
                for key, values in sorted(items.items(), key=group_order)
            ],
            separators=(",", ":"),
        )
        for items in groups
    ]
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def loads_line(raw: bytes, source: str) -> Groups:
    """One definition's groups from a line of :func:`dumps_groups`.

    Checked as it is read, in C where it can be (a line holds thousands of groups): days
    are made by the decoder itself, each key part must be a day, a text or null, and each
    sum a finite number written as text.
    """
    try:
        groups: Groups = {}
        for item in json.loads(raw, object_pairs_hook=_day):
            values = item.pop()
            if type(values) is not list:
                raise ValueError(f"{values!r} is not a list of numbers written as text")
            "".join(values)  # a TypeError unless every sum is written as text
            sums = list(map(Decimal, values))
            if not all(map(Decimal.is_finite, sums)):
                raise ValueError(f"{values!r} holds a number that is not finite")
            key = tuple(item)
            if not _KEY_PART_TYPES.issuperset(map(type, key)):
                raise ValueError(f"group key {key!r} has a part neither a day, a text nor null")
            groups[key] = sums
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, InvalidOperation) as error:
        raise ShardGroupsError(
            f"{source}: not a shard's breakdown groups ({type(error).__name__}: {error});"
            " clear the shard's task so it writes them again"
        ) from None
    return groups


_KEY_PART_TYPES = frozenset({date, str, type(None)})
_day_from_text = lru_cache(maxsize=4096)(date.fromisoformat)
"""A month's groups name a few dozen days, each thousands of times."""


def _day(pairs: list[tuple[str, Any]]) -> date:
    """A JSON object of a groups line: only ever a day, ``{"day": "2026-10-05"}``."""
    if len(pairs) != 1 or pairs[0][0] != "day":
        raise ValueError(f"{dict(pairs)!r} is not a day")
    return _day_from_text(pairs[0][1])


class MergedGroups(Sequence[Groups]):
    """Definition ``i``'s groups summed over every shard, read from the shards' files when
    looked up and not kept (see the module docstring).

    ``files``: per shard, in shard order, (path, sha256 as recorded). Use it as a context
    manager, or :meth:`close` it: it keeps each file open between lookups.
    """

    def __init__(self, files: Sequence[tuple[StoragePath, str]], definitions: int) -> None:
        self._files = list(files)
        self._definitions = definitions
        self._readers: list[_LineReader | None] = [None] * len(self._files)
        for path, sha256 in self._files:
            _check_sha256(path, sha256)

    def __len__(self) -> int:
        return self._definitions

    def __getitem__(self, index: int) -> Groups:  # type: ignore[override]
        if not 0 <= index < self._definitions:
            raise IndexError(index)
        merged: Groups = {}
        with exact_context(), paused_gc():
            for shard, (path, _) in enumerate(self._files):
                reader = self._readers[shard]
                if reader is None or reader.next_line > index:
                    if reader is not None:
                        reader.close()
                    reader = self._readers[shard] = _LineReader(path)
                source = f"{path.name} line {index + 1}"
                groups = loads_line(reader.line(index), source)
                if not merged:
                    merged = groups
                    continue
                for key, values in groups.items():
                    sums = merged.get(key)
                    if sums is None:
                        merged[key] = values
                    elif len(sums) == len(values):
                        merged[key] = list(map(add, sums, values))
                    else:
                        raise ShardGroupsError(f"{source}: {key!r} has {len(values)} sums")
        return merged

    def __iter__(self) -> Iterator[Groups]:
        return (self[index] for index in range(self._definitions))

    def close(self) -> None:
        for reader in self._readers:
            if reader is not None:
                reader.close()
        self._readers = [None] * len(self._files)

    def __enter__(self) -> MergedGroups:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _LineReader:
    """A groups file read forward, line by line."""

    def __init__(self, path: StoragePath) -> None:
        self._path = path
        self._handle: IO[bytes] = path.open("rb")
        self.next_line = 0

    def line(self, index: int) -> bytes:
        while True:
            raw = self._handle.readline()
            if not raw.endswith(b"\n"):
                raise ShardGroupsError(
                    f"{self._path.name}: no line {index + 1}; the shard's groups file is"
                    " shorter than the plan's definitions: clear the shard's task"
                )
            self.next_line += 1
            if self.next_line > index:
                return raw

    def close(self) -> None:
        self._handle.close()


def _check_sha256(path: StoragePath, expected: str) -> None:
    """Read ``path`` through once (a chunk at a time) and hold it to ``expected``."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise ShardGroupsError(f"{path.name} changed since its shard wrote it")


def key_part(part: date | str | None) -> Any:
    """A group key's part as JSON (a day tagged, so it reads back as a day); the exact-sums
    files of earlier shards wrote theirs the same way."""
    return {"day": part.isoformat()} if isinstance(part, date) else part


def read_part(part: Any) -> date | str | None:
    if isinstance(part, dict):
        return date.fromisoformat(part["day"])
    if part is None or isinstance(part, str):
        return part
    raise ValueError(f"group key part {part!r} is neither a day, a text nor null")


def group_order(item: tuple[GroupKey, list[Decimal]]) -> tuple[tuple[int, str], ...]:
    """Group keys mix days, texts and nulls: ordered by kind, then value, for stable files."""
    return tuple(
        (0, p.isoformat()) if isinstance(p, date) else (1, p) if p is not None else (2, "")
        for p in item[0]
    )
