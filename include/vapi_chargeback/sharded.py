"""The allocate step spread over shards of fetched batches: sum, merge.

Allocation's cost grows with the org (rows ≈ assistants × days), so a large month is
split into shards that Airflow runs as mapped tasks, on any workers, each holding only
its own rows. Exact sums are additive and a row's contribution depends on the row alone,
so a shard is simply some of the month's stored batches (``shards.assign_batches``):

1. :func:`allocate_shard_run` — one task per shard: sum the rows of its batches *exactly*,
   read straight from the raw responses fetch stored, into lines, successful calls,
   daily costs and breakdown groups (``allocate.exact_sums(only=…)``), and keep the sums
   in the run folder, the breakdown groups in a file of their own, one definition a line
   (``shard_groups``);
2. :func:`merge_run` — one task: add the shards' sums in shard order, then round once over
   all lines, split the shared pools and round breakdowns and daily costs
   (``allocate.rounded_statement``), exactly as the single allocate task does. The
   breakdown groups are added and rounded one cost center at a time, each cost center's
   tables written to the work folder before the next is read (``shard_groups``,
   ``breakdown_files``): at 20,000 assistants all owners' groups and tables are several
   times a worker's memory, the lines a small part of it.

Shards overlap freely: the same line, day or breakdown group is summed in several shards
(an assistant's calls are in every batch of the month) and added in the merge. Nothing is
rounded before the merge, and exact sums do not depend on how rows were grouped, so the
statement is byte for byte the same for any shard count; one shard is the single
allocate task of old. The shard count is the DAG param ``allocate_shards``
(``run_month(allocate_shards=…)``); empty, it follows the size of the month's raw
responses (:func:`shards.auto_shard_count`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any, cast

from pydantic import BaseModel, ConfigDict

from vapi_chargeback import exact_sums
from vapi_chargeback.allocate import breakdown_tables, rounded_statement
from vapi_chargeback.allocate import exact_sums as sum_exactly
from vapi_chargeback.breakdown_files import forked_writer
from vapi_chargeback.breakdowns import BreakdownTables, GroupKey
from vapi_chargeback.names import run_rules
from vapi_chargeback.pipeline import (
    OpenPath,
    RunInfo,
    allocate_run,
    checked_config,
    default_open_path,
    load_inputs,
    make_folder,
)
from vapi_chargeback.process_memory import paused_gc
from vapi_chargeback.shard_groups import MergedGroups, dumps_groups
from vapi_chargeback.shards import (
    SHARDS_DIR,
    assign_batches,
    auto_shard_count,
    batch_weights,
    checked_count,
    shard_folder,
)
from vapi_chargeback.workfolder import (
    FetchedBatch,
    RunStateError,
    StoragePath,
    StoredResults,
    load_plan,
)

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
    groups_file: str
    """The breakdown groups (``shard_groups``), relative to ``shards/``."""
    groups_sha256: str
    batches: list[int]
    """The fetched batches this shard summed (``shards.assign_batches``)."""


def shard_count(fetched: Sequence[Mapping[str, Any]], requested: int | None) -> int:
    """The shards of this run: ``requested`` (checked), else from the raw responses' size."""
    if requested is not None:
        return checked_count(requested, "allocate_shards")
    return auto_shard_count(sum(int(item["size"]) for item in fetched))


def allocate_shard_run(
    run: RunInfo,
    fetched: Sequence[Mapping[str, Any]],
    shard: int,
    shards: int,
    *,
    open_path: OpenPath = default_open_path,
) -> dict[str, Any]:
    """Sum the rows of shard ``shard``'s batches exactly and keep the sums in the work folder.

    The cyclic collector stays paused for the whole task, not only while summing: loading
    the 20,000-row mapping and writing the sums out (millions of ``Decimal`` texts) set off
    collections that scan every sum held, 2.5 of 14 CPU-s of a 5M-call month's shard.
    """
    checked_count(shards, "allocate shard")
    if not 0 <= shard < shards:
        raise RunStateError(f"shard {shard} is not one of 0..{shards - 1}")
    with paused_gc():
        return _sum_shard(run, fetched, shard, shards, open_path)


def _sum_shard(
    run: RunInfo,
    fetched: Sequence[Mapping[str, Any]],
    shard: int,
    shards: int,
    open_path: OpenPath,
) -> dict[str, Any]:
    """:func:`allocate_shard_run`'s work, the collector paused."""
    work = open_path(run.work_url)
    config, mapping, plan = load_inputs(run, work)
    records = {record.index: record for record in map(FetchedBatch.model_validate, fetched)}
    indexes = sorted(records)
    if indexes != list(range(len(plan.batches))) or len(fetched) != len(indexes):
        raise RunStateError(
            f"shard {shard} was handed the records of batches {indexes}, not of every batch"
            f" of the plan (0..{len(plan.batches) - 1}) once: clear the fetch tasks"
        )
    mine = assign_batches(batch_weights(plan, list(records.values())), shards)[shard]
    results = StoredResults(work, plan, [records[index] for index in mine])
    only = {name for index in mine for name in plan.batches[index]}
    rules = run_rules(work, config.mapping_rules)
    sums = sum_exactly(config, mapping, plan, results, rules, only=only)
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
        "shard %d of %d: batches %s, %d line pieces, %d bytes of exact sums",
        shard,
        shards,
        mine,
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
        batches=mine,
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
    up), and ``allocate_run`` rounds and writes one cost center's tables at a time. With a
    second CPU a worker process forked before any sums are loaded writes half of them
    (``breakdown_files.forked_writer``): sent the direct lines' totals once the lines are
    rounded, it starts on the tables while this process names the lines, and both take
    cost centers from a shared counter; the files are the same bytes.
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
    # No mapping parsed: the merge attributes no rows (allocate_run loads it for the names).
    config, plan = checked_config(run), load_plan(work)
    summed = sorted(index for part in shards for index in part.batches)
    if summed != list(range(len(plan.batches))):
        raise RunStateError(
            f"the shards summed batches {summed}, not every batch of the plan"
            f" (0..{len(plan.batches) - 1}) once: clear the allocate tasks"
        )
    folder = work / SHARDS_DIR
    files = [(folder / part.groups_file, part.groups_sha256) for part in shards]
    month = config.for_period(plan.period)

    def tables_for(direct: Mapping[str, Mapping[str, Decimal]]) -> BreakdownTables:
        """In the breakdowns worker: the tables this process rounds, from the same files."""
        return breakdown_tables(month, plan, MergedGroups(files, len(plan.definitions)), direct)

    with paused_gc(), forked_writer(work, make_folder, tables_for) as writer:
        merged = _added(folder, shards)
        with MergedGroups(files, len(plan.definitions)) as groups:
            merged.groups = cast(list[dict[GroupKey, list[Decimal]]], groups)
            statement = rounded_statement(config, plan, merged)
            del merged  # the lines are rounded: the exact sums are no longer needed
            tables = cast(BreakdownTables, statement.breakdowns)
            if writer is not None:
                shared = writer.share(work, tables, make_folder, tables.totals)
                statement = replace(statement, breakdowns=shared)
            return allocate_run(run, fetched, open_path=open_path, statement=statement)


def _added(folder: StoragePath, shards: Sequence[ShardSums]) -> exact_sums.ExactSums:
    """The shards' exact sums added in shard order, each file held to its sha256."""
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
    return merged
