"""Which shard of the allocation reads which rows, and each stored batch cut into shard files.

A large org's month is millions of rows; one allocate task reading them all needs memory
that grows with the org. Split by assistant, each part sums its own rows exactly and a
small merge rounds the whole (``sharded.py``). The split must be *stable* — the same
assistant always lands in the same shard, whatever the run, worker or order of batches —
so a shard is a hash of the assistant id, not a position: the canonical (lower-case) id,
hashed with CRC-32 (not Python's ``hash``, which is salted per process), modulo the shard
count. Rows without an assistant (none, empty, the all-zero id, a non-string) all go to
shard 0, so the ``unallocated:no-assistant`` line is summed in one place.

Every line sums the rows of one assistant, so line sums never straddle shards; breakdown
groups and daily costs do, and are added exactly in the merge.

:func:`partition_batch` reads one stored raw response (checked against its sha256 and the
plan, as every reader of it is) and writes one file per shard holding that shard's rows of
every query of the batch, in the raw responses' own format: a JSON array of results with
their byte spans recorded, so a shard reads them through the same checked reader
(``workfolder.StoredResults``) one query at a time, and holds only its own rows.
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from collections import deque
from collections.abc import Sequence
from decimal import Decimal
from operator import methodcaller
from typing import Any

from vapi_chargeback.attribution import NO_ASSISTANT_ID
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.mapping import canonical_assistant_id
from vapi_chargeback.plan import ASSISTANT_KEY, Plan
from vapi_chargeback.workfolder import FetchedBatch, RunStateError, StoragePath, StoredResults

SHARDS_DIR = "shards"
"""In the run's work folder: ``shards/of-NN/raw/`` holds the shard files of a run cut in NN."""
NO_ASSISTANT_SHARD = 0
"""Where rows without an assistant go, whatever the shard count."""
MAX_SHARDS = 256
"""More shards than this only adds tasks: each shard re-reads every batch's file list."""
BYTES_PER_SHARD = 256 << 20
"""Automatic shard count: one shard per this many bytes of raw responses. A shard holds one
query of its rows at a time as Python objects (several times their bytes) plus its exact
sums; 256 MiB of responses keeps a shard task well inside a 1 GiB worker."""
MAX_AUTO_SHARDS = 16
"""The automatic count stops here (a set count may go higher, up to :data:`MAX_SHARDS`)."""


class ShardCountError(PermanentError, ValueError):
    """A shard count that is not a whole number in 1..MAX_SHARDS."""


def checked_count(shards: object, source: str) -> int:
    """``shards`` as a shard count, or :class:`ShardCountError` naming where it came from."""
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        raise ShardCountError(
            f"{source}: allocate shards must be a whole number from 1 to {MAX_SHARDS},"
            f" got {shards!r}; leave it empty for the automatic count"
        )
    return shards


def auto_shard_count(raw_bytes: int) -> int:
    """Shards for a month whose raw responses weigh ``raw_bytes``: 1 for most orgs (the
    single allocate task of old), one more per :data:`BYTES_PER_SHARD`, at most
    :data:`MAX_AUTO_SHARDS`."""
    return max(1, min(MAX_AUTO_SHARDS, math.ceil(raw_bytes / BYTES_PER_SHARD)))


def shard_of(assistant_id: object, shards: int) -> int:
    """The shard that sums the rows of ``assistant_id`` when the month is cut in ``shards``."""
    if shards == 1 or not isinstance(assistant_id, str):
        return NO_ASSISTANT_SHARD
    canonical = canonical_assistant_id(assistant_id)
    if not canonical or canonical == NO_ASSISTANT_ID:
        return NO_ASSISTANT_SHARD
    return zlib.crc32(canonical.encode("utf-8")) % shards


class _Sharder:
    """:func:`shard_of` memoised: a batch repeats each assistant on hundreds of rows."""

    def __init__(self, shards: int) -> None:
        self._shards = shards
        self._seen: dict[object, int] = {}

    def __call__(self, assistant_id: object) -> int:
        try:
            return self._seen[assistant_id]
        except KeyError:
            shard = self._seen[assistant_id] = shard_of(assistant_id, self._shards)
            return shard
        except TypeError:
            return shard_of(assistant_id, self._shards)

    def column(self, assistant_ids: Sequence[object]) -> list[int]:
        """The shard of each of ``assistant_ids``: each distinct id worked out once, then
        every row by a lookup in C."""
        try:
            missing = set(assistant_ids).difference(self._seen)
        except TypeError:
            return list(map(self, assistant_ids))
        for assistant_id in missing:
            self._seen[assistant_id] = shard_of(assistant_id, self._shards)
        return list(map(self._seen.__getitem__, assistant_ids))


def shard_folder(work: StoragePath, shards: int) -> StoragePath:
    """The folder whose ``raw/`` holds the shard files of a run cut in ``shards``."""
    return work / SHARDS_DIR / f"of-{shards:02d}"


def shard_file_name(batch: int, shard: int) -> str:
    return f"batch-{batch:03d}-shard-{shard:03d}.json"


def partition_batch(
    work: StoragePath, plan: Plan, batch: FetchedBatch, shards: int
) -> list[FetchedBatch]:
    """Cut one stored batch into ``shards`` files of its rows; their records, by shard.

    Each file answers every query of the batch (with only its shard's rows, possibly none),
    so the checks of the raw files hold for it too. A file already written by an earlier
    attempt is overwritten with the same bytes: the cut is a function of the raw response.
    The caller makes the folder (``shard_folder(work, shards) / "raw"``).
    """
    folder = shard_folder(work, shards) / "raw"
    results = StoredResults(work, plan, [batch])
    sharder = _Sharder(shards)
    parts: list[list[bytes]] = [[] for _ in range(shards)]
    sizes = [1] * shards
    spans: list[dict[str, tuple[int, int]]] = [{} for _ in range(shards)]
    for name in plan.batches[batch.index]:
        result = results[name]
        envelope = result.model_dump(mode="json", by_alias=True, exclude={"result"})
        rows: list[list[dict[str, Any]]] = [[] for _ in range(shards)]
        targets = sharder.column(list(map(methodcaller("get", ASSISTANT_KEY), result.result)))
        deque(map(list.append, map(rows.__getitem__, targets), result.result), maxlen=0)
        for shard in range(shards):
            if spans[shard]:
                parts[shard].append(b",")
                sizes[shard] += 1
            body = _dumps({**envelope, "result": rows[shard]})
            spans[shard][name] = (sizes[shard], sizes[shard] + len(body))
            parts[shard].append(body)
            sizes[shard] += len(body)
        del result, rows
    records = []
    for shard in range(shards):
        raw = b"".join([b"[", *parts[shard], b"]"])
        parts[shard] = []
        name = shard_file_name(batch.index, shard)
        (folder / name).write_bytes(raw)
        records.append(
            FetchedBatch(
                index=batch.index,
                file=name,
                sha256=hashlib.sha256(raw).hexdigest(),
                size=len(raw),
                attempts=0,
                status_code=batch.status_code,
                spans=spans[shard],
            )
        )
    return records


def shard_results(
    work: StoragePath,
    plan: Plan,
    partitions: Sequence[Sequence[FetchedBatch]],
    shard: int,
    shards: int,
) -> StoredResults:
    """One shard's rows of every batch, read (and checked) one query at a time.

    ``partitions``: per batch, the records :func:`partition_batch` returned. A batch
    missing, or cut in another count, is a :class:`RunStateError`: the shard would miss rows.
    """
    mine = []
    for records in partitions:
        if len(records) != shards:
            raise RunStateError(
                f"batch {records[0].index if records else '?'} was cut in {len(records)}"
                f" shards, not {shards}; clear the partition tasks and the shards with them"
            )
        mine.append(records[shard])
    indexes = sorted(record.index for record in mine)
    if indexes != list(range(len(plan.batches))):
        raise RunStateError(
            f"shard {shard} got the files of batches {indexes}, not of every batch of the"
            f" plan (0..{len(plan.batches) - 1}); clear the partition tasks"
        )
    return StoredResults(shard_folder(work, shards), plan, mine)


_OPEN = "\x00"
_CLOSE = "\x01"
_OPENED = '"\\u0000'
_CLOSED = '\\u0001"'
"""How ``json`` writes the start and end of a marked number: the marks escaped, in quotes."""


def _dumps(document: dict[str, Any]) -> bytes:
    """``document`` as JSON whose ``Decimal`` values are written as the numbers they are.

    ``json`` cannot write a ``Decimal``; each is written as a string marked at both ends
    with control characters, then the quotes and marks are deleted (two ``str.replace``
    in C, where a regular expression with a group would call Python for each of millions
    of numbers), leaving the number's own text (``str`` of a ``Decimal`` is valid JSON and
    reads back, with ``parse_float=Decimal``, as the same value and exponent). A string of
    the data holding a mark would be counted too: then the document is written the slow,
    unambiguous way.
    """
    count = 0

    def mark(value: object) -> str:
        nonlocal count
        if isinstance(value, Decimal):
            count += 1
            return _OPEN + str(value) + _CLOSE
        raise TypeError(f"cannot write {type(value).__name__} to a shard file")

    text = json.dumps(document, default=mark, separators=(",", ":"))
    if text.count(_OPENED) != count or text.count(_CLOSED) != count:
        return _dumps_slowly(document).encode("utf-8")
    return text.replace(_OPENED, "").replace(_CLOSED, "").encode("utf-8")


def _dumps_slowly(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_dumps_slowly(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_dumps_slowly(item) for item in value) + "]"
    return json.dumps(value)
