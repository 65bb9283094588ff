"""How many shards the allocation is spread over, and which stored batches each one sums.

A large org's month is millions of rows; one allocate task reading them all needs time and
memory that grow with the org. Exact sums are additive and a row's contribution depends on
the row alone (``allocate.exact_sums``), so any split of the rows, summed apart and added,
gives the sums of the whole: a shard does not need whole assistants, lines or days. The
split is therefore the one that costs nothing: whole fetched batches, each shard reading
its batches' raw responses where fetch stored them (no cut, no second copy of the rows).

Every shard task works out the same split from the plan and the fetched records alone
(:func:`batch_weights`, :func:`assign_batches`), balanced by the CPU a batch costs (its
bytes, the core query's counted twice), so the tasks need no hand-over besides the records
fetch already returned, and a retried shard sums the same batches again.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence

from vapi_chargeback.errors import PermanentError
from vapi_chargeback.plan import Plan
from vapi_chargeback.workfolder import FetchedBatch, StoragePath

SHARDS_DIR = "shards"
"""In the run's work folder: ``shards/of-NN/`` holds the exact sums of a run cut in NN."""
MAX_SHARDS = 256
"""More shards than this only adds tasks, most of them with no batch to sum."""
BYTES_PER_SHARD = 256 << 20
"""Automatic shard count: one shard per this many bytes of raw responses. Memory decides it,
not time: a shard task's peak is about 210 MiB (imports, config, mapping, one query's rows
decoded) plus 1.7 × its batches' bytes (their exact sums: lines and breakdown groups of
every assistant its queries name). Measured on a 20,000-assistant month (1M calls, 117
batches, 513 MiB of responses; each task in a fresh process): 2 shards 636 MiB, 4 shards
433 MiB, 8 shards 314 MiB at peak, one allocate task 772 MiB; the shard tasks' summed time
was the same for 2 and 4 shards (256 vs 258 s under load), so the fixed cost of a task
(imports, config, 20,000-row mapping) is small beside the rows and fewer shards would not
be faster by much — but 512 MiB a shard would come near 1 GiB. 256 MiB keeps a shard near
650 MiB, and the 5M-call month (1.8 GiB of responses) in 8 shards."""
MAX_AUTO_SHARDS = 16
"""The automatic count stops here (a set count may go higher, up to :data:`MAX_SHARDS`)."""
CORE_WEIGHT = 2
"""A byte of the core query's results weighs this many bytes of any other query's when
batches are dealt to shards (:func:`batch_weights`): its rows are attributed, summed into
lines, successes and daily costs besides their breakdown groups, and its exact sums are the
largest a shard writes. Measured on the 5M-call month (each batch summed alone, CPU-s per
MB of response): core 75 ms, by-reason 42, by-type 33 — about 2 to 1. Dealt by bytes
alone, the shards holding two core batches took 13.5 s against 8 s for the others."""


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


def batch_weights(plan: Plan, fetched: Sequence[FetchedBatch]) -> dict[int, int]:
    """Batch index → its weight for :func:`assign_batches`: the bytes of its stored
    response, each byte of the core query's results counted :data:`CORE_WEIGHT` times.

    A function of the plan and the fetched records alone (their byte spans by query), so
    every shard task works out the same weights. A record without spans (older runs) counts
    whole at the core weight when its batch asks any part of the core query.
    """
    core = set(plan.parts(plan.core_query))
    weights: dict[int, int] = {}
    for record in fetched:
        names = set(plan.batches[record.index]) if 0 <= record.index < len(plan.batches) else set()
        if not record.spans:
            weights[record.index] = record.size * (CORE_WEIGHT if names & core else 1)
            continue
        of_core = {part for name in names & core for part in record.pieces.get(name, [name])}
        extra = sum(end - start for part, (start, end) in record.spans.items() if part in of_core)
        weights[record.index] = record.size + (CORE_WEIGHT - 1) * extra
    return weights


def assign_batches(sizes: Mapping[int, int], shards: int) -> list[list[int]]:
    """The batches each shard sums, by shard, each list in batch order: every batch in
    exactly one shard.

    ``sizes``: batch index → weight of its stored response, what a shard's time follows
    (:func:`batch_weights`; bytes alone will do). Greedy: the heaviest batch first (ties:
    the lower index) to the shard with the least weight so far (ties: the lower shard), so
    no shard holds more than the average plus one batch, and the split is a function of
    the weights alone — every shard task, on any worker, works out the same one. With more
    shards than batches the last shards get none (they sum nothing, and the merge adds nothing).
    """
    count = checked_count(shards, "assign batches")
    loads = [(0, shard) for shard in range(count)]
    chosen: list[list[int]] = [[] for _ in range(count)]
    for batch in sorted(sizes, key=lambda index: (-sizes[index], index)):
        load, shard = heapq.heappop(loads)
        chosen[shard].append(batch)
        heapq.heappush(loads, (load + sizes[batch], shard))
    return [sorted(batches) for batches in chosen]


def shard_folder(work: StoragePath, shards: int) -> StoragePath:
    """The folder of the exact sums of a run cut in ``shards``."""
    return work / SHARDS_DIR / f"of-{shards:02d}"
