"""The allocate step spread over shards of assistants: partition, sum, merge.

Allocation's cost grows with the org (rows ≈ assistants × days), so a large month is
split by assistant (``shards.py``) into shards that Airflow runs as mapped tasks, on any
workers, each holding only its own rows:

1. :func:`partition_run` — one task per fetched batch: cut its raw response into one file
   per shard (skipped with one shard, whose task reads the raw responses themselves);
2. :func:`allocate_shard_run` — one task per shard: sum its rows *exactly* into lines,
   successful calls, daily costs and breakdown groups (``allocate.exact_sums``), and keep
   the sums in the run folder, the breakdown groups in a file of their own, one
   definition a line (``shard_groups``);
3. :func:`merge_run` — one task: add the shards' sums in shard order, then round once over
   all lines, split the shared pools and round breakdowns and daily costs
   (``allocate.rounded_statement``), exactly as the single allocate task does. The
   breakdown groups are added and rounded one cost center at a time, each cost center's
   tables written to the work folder before the next is read (``shard_groups``,
   ``breakdown_files``): at 20,000 assistants all owners' groups and tables are several
   times a worker's memory, the lines a small part of it.

Nothing is rounded before the merge, and exact sums do not depend on how rows were
grouped, so the statement is byte for byte the same for any shard count; one shard is the
single allocate task of old. The shard count is the DAG param ``allocate_shards``
(``run_month(allocate_shards=…)``); empty, it follows the size of the month's raw
responses (:func:`shards.auto_shard_count`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, cast

from pydantic import BaseModel, ConfigDict

from vapi_chargeback import exact_sums
from vapi_chargeback.allocate import exact_sums as sum_exactly
from vapi_chargeback.allocate import rounded_statement
from vapi_chargeback.breakdowns import GroupKey
from vapi_chargeback.names import run_rules
from vapi_chargeback.pipeline import (
    OpenPath,
    RunInfo,
    allocate_run,
    default_open_path,
    load_inputs,
    make_folder,
)
from vapi_chargeback.shard_groups import MergedGroups, dumps_groups
from vapi_chargeback.shards import (
    SHARDS_DIR,
    auto_shard_count,
    checked_count,
    partition_batch,
    shard_folder,
    shard_results,
)
from vapi_chargeback.workfolder import FetchedBatch, RunStateError, StoredResults, load_plan

log = logging.getLogger(__name__)


class ShardSums(BaseModel):
    """What a shard task hands the merge: where its exact sums are, and their sha256."""

    model_config = ConfigDict(frozen=True)

    shard: int
    shards: int
    file: str
    """Relative to the work folder's ``shards/``."""
    sha256: str
    pieces: int
    groups_file: str = ""
    """The breakdown groups (``shard_groups``), relative to ``shards/``; empty from a shard
    task of an earlier version, whose groups are in ``file``."""
    groups_sha256: str = ""


def shard_count(fetched: Sequence[Mapping[str, Any]], requested: int | None) -> int:
    """The shards of this run: ``requested`` (checked), else from the raw responses' size."""
    if requested is not None:
        return checked_count(requested, "allocate_shards")
    return auto_shard_count(sum(int(item["size"]) for item in fetched))


def partition_run(
    run: RunInfo,
    fetched: Sequence[Mapping[str, Any]],
    batch: int,
    shards: int,
    *,
    open_path: OpenPath = default_open_path,
) -> list[dict[str, Any]]:
    """Cut batch ``batch``'s raw response into ``shards`` files; their records, by shard
    (none with one shard: its task reads the raw responses)."""
    if checked_count(shards, "partition") == 1:
        return []
    records = [FetchedBatch.model_validate(item) for item in fetched]
    record = next((item for item in records if item.index == batch), None)
    if record is None:
        raise RunStateError(f"batch {batch} was not fetched; got {[r.index for r in records]}")
    work = open_path(run.work_url)
    make_folder(shard_folder(work, shards) / "raw")
    parts = partition_batch(work, load_plan(work), record, shards)
    log.info(
        "batch %d of %s cut in %d shards: %s bytes",
        batch,
        run.month,
        shards,
        ", ".join(str(part.size) for part in parts),
    )
    return [part.model_dump(mode="json") for part in parts]


def allocate_shard_run(
    run: RunInfo,
    fetched: Sequence[Mapping[str, Any]],
    partitions: Sequence[Sequence[Mapping[str, Any]]],
    shard: int,
    shards: int,
    *,
    open_path: OpenPath = default_open_path,
) -> dict[str, Any]:
    """Sum shard ``shard``'s rows exactly and keep the sums in the work folder."""
    checked_count(shards, "allocate shard")
    if not 0 <= shard < shards:
        raise RunStateError(f"shard {shard} is not one of 0..{shards - 1}")
    work = open_path(run.work_url)
    config, mapping, plan = load_inputs(run, work)
    if shards == 1:
        batches = [FetchedBatch.model_validate(item) for item in fetched]
        results = StoredResults(work, plan, batches)
    else:
        cut = [[FetchedBatch.model_validate(item) for item in part] for part in partitions]
        results = shard_results(work, plan, cut, shard, shards)
    sums = sum_exactly(config, mapping, plan, results, run_rules(work, config.mapping_rules))
    groups = dumps_groups(sums.groups)
    sums.groups = []
    raw = exact_sums.dumps(sums)
    folder = shard_folder(work, shards)
    make_folder(folder)
    name = f"exact-{shard:03d}.json"
    (folder / name).write_bytes(raw)
    groups_name = f"groups-{shard:03d}.jsonl"
    (folder / groups_name).write_bytes(groups)
    log.info(
        "shard %d of %d: %d line pieces, %d bytes of exact sums",
        shard,
        shards,
        len(sums.pieces),
        len(raw),
    )
    return ShardSums(
        shard=shard,
        shards=shards,
        file=f"{folder.name}/{name}",
        sha256=hashlib.sha256(raw).hexdigest(),
        pieces=len(sums.pieces),
        groups_file=f"{folder.name}/{groups_name}",
        groups_sha256=hashlib.sha256(groups).hexdigest(),
    ).model_dump(mode="json")


def merge_run(
    run: RunInfo,
    fetched: Sequence[Mapping[str, Any]],
    parts: Sequence[Mapping[str, Any]],
    *,
    open_path: OpenPath = default_open_path,
) -> dict[str, Any]:
    """Add the shards' exact sums in shard order, round once, keep the statement: the result
    of the single allocate step (``pipeline.allocate_run``), for reconcile.

    The breakdown groups stay in the shards' files: ``MergedGroups`` stands in for the
    merged ``ExactSums.groups`` (a sequence, one item per definition, added up when looked
    up), and ``allocate_run`` rounds and writes one cost center's tables at a time.
    Shard results of an earlier version (groups inside the exact sums) merge as before.
    """
    shards = sorted((ShardSums.model_validate(part) for part in parts), key=lambda s: s.shard)
    counts = {part.shards for part in shards}
    if not shards or len(counts) != 1 or [s.shard for s in shards] != list(range(len(shards))):
        raise RunStateError(
            f"the merge needs every shard of one cut once; got shards {[s.shard for s in shards]}"
            f" of counts {sorted(counts)}: clear the allocate tasks"
        )
    if counts != {len(shards)}:
        raise RunStateError(f"{len(shards)} shard results for a cut in {counts.pop()}")
    work = open_path(run.work_url)
    config, _, plan = load_inputs(run, work)
    folder = work / SHARDS_DIR
    merged: exact_sums.ExactSums | None = None
    for part in shards:
        raw = (folder / part.file).read_bytes()
        if hashlib.sha256(raw).hexdigest() != part.sha256:
            raise RunStateError(f"shards/{part.file} changed since shard {part.shard} wrote it")
        sums = exact_sums.loads(raw, f"shards/{part.file}")
        if merged is None:
            merged = sums
        else:
            merged.add(sums)
    assert merged is not None
    apart = {bool(part.groups_file) for part in shards}
    if apart == {False}:
        statement = rounded_statement(config, plan, merged)
        return allocate_run(run, fetched, open_path=open_path, statement=statement)
    if apart != {True}:
        raise RunStateError(
            "shards of two versions (groups apart or not): clear the allocate tasks"
        )
    files = [(folder / part.groups_file, part.groups_sha256) for part in shards]
    with MergedGroups(files, len(plan.definitions)) as groups:
        merged.groups = cast(list[dict[GroupKey, list[Decimal]]], groups)
        statement = rounded_statement(config, plan, merged)
        return allocate_run(run, fetched, open_path=open_path, statement=statement)
