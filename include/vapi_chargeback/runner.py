"""A month run in one process: the DAG's step functions (``pipeline``) chained, for the
command line, the benchmarks and the tests, so there is one way to run a month outside
Airflow and it is the DAG's."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from vapi_chargeback.pipeline import (
    OpenPath,
    RunInfo,
    RunSettings,
    allocate_run,
    default_open_path,
    fetch_batch,
    plan_run,
    publish_run,
    reconcile_run,
)
from vapi_chargeback.sharded import (
    allocate_shard_run,
    merge_run,
    partition_run,
    shard_count,
)
from vapi_chargeback.verify.step import verification_enabled, verify_run

if TYPE_CHECKING:
    from vapi_chargeback.analytics.client import VapiAnalyticsClient

DEFAULT_FETCH_CONCURRENCY = 4
"""Batches :func:`run_month` sends side by side: the DAG's fetch task runs at most four
at once per run (``max_active_tis_per_dagrun``), and an API that rate-limits sees the same
load either way."""

StepHook = Callable[[str], AbstractContextManager[object]]
"""Wraps each step of :func:`run_month`, given its name (the benchmark measures peak memory
and profiles through it)."""


@dataclass(frozen=True)
class MonthRun:
    """A month run in one process: what each step handed the next, and its wall time."""

    run: RunInfo
    fetched: list[dict[str, Any]]
    allocated: dict[str, Any]
    reconciled: dict[str, Any]
    published: dict[str, Any] | None
    """``None`` when the run stopped before publishing (``run_month(publish=False)``)."""
    step_seconds: dict[str, float]

    @property
    def requests(self) -> int:
        """``POST /analytics`` requests sent, retries included."""
        return sum(int(batch["attempts"]) for batch in self.fetched)


def run_month(
    settings: RunSettings,
    client: VapiAnalyticsClient,
    *,
    open_path: OpenPath = default_open_path,
    now: datetime | None = None,
    publish: bool = True,
    fetch_concurrency: int = DEFAULT_FETCH_CONCURRENCY,
    around_step: StepHook | None = None,
    verify: bool | None = None,
    allocate_shards: int | None = 1,
) -> MonthRun:
    """plan → fetch every batch → allocate → reconcile → verify → publish, as the DAG's tasks
    run them. ``verify`` is the DAG param ``verify_calls``: ``None`` follows the config.
    ``allocate_shards`` is the DAG param of that name (``None``: the DAG's automatic count,
    by the month's size); with more than one shard, allocate runs as the DAG's mapped tasks
    do, one after another here: ``partition`` every batch, ``allocate_shard`` each shard,
    then ``allocate`` (the merge). One process gains no parallelism from shards, only the
    extra cut, so the default here is one shard, the single allocate task.

    The same step functions, the same work folder, the same hand-overs (serialized as the
    DAG's XComs are): a statement published here has the bytes the DAG would publish. The
    first failing step raises and nothing later runs. ``publish=False`` stops after
    reconcile, with everything publish needs in the result (the crash tests publish in a
    process of their own). ``fetch_concurrency=1`` sends the batches in plan order.
    """
    seconds: dict[str, float] = {}

    def step(name: str, call: Callable[[], Any]) -> Any:
        with around_step(name) if around_step else nullcontext():
            began = time.perf_counter()
            try:
                return call()
            finally:
                seconds[name] = time.perf_counter() - began

    def fetch_all(run: RunInfo) -> list[dict[str, Any]]:
        def one(index: int) -> dict[str, Any]:
            return fetch_batch(run, index, client, open_path=open_path).model_dump(mode="json")

        if fetch_concurrency <= 1 or run.batch_count <= 1:
            return [one(index) for index in range(run.batch_count)]
        with ThreadPoolExecutor(min(fetch_concurrency, run.batch_count)) as pool:
            return list(pool.map(one, range(run.batch_count)))

    run: RunInfo = step("plan", lambda: plan_run(settings, open_path=open_path, now=now))
    fetched: list[dict[str, Any]] = step("fetch", lambda: fetch_all(run))
    allocated = allocate_month(run, fetched, shard_count(fetched, allocate_shards), open_path, step)
    reconciled = step("reconcile", lambda: reconcile_run(run, allocated, open_path=open_path))
    if verification_enabled(run, verify):
        checked = reconciled
        reconciled = step(
            "verify",
            lambda: verify_run(run, allocated, checked, client, open_path=open_path),
        )
    published = (
        step("publish", lambda: publish_run(run, reconciled, open_path=open_path))
        if publish
        else None
    )
    return MonthRun(run, fetched, allocated, reconciled, published, seconds)


def allocate_month(
    run: RunInfo,
    fetched: list[dict[str, Any]],
    shards: int,
    open_path: OpenPath,
    step: Callable[[str, Callable[[], Any]], Any],
) -> dict[str, Any]:
    """Allocate as the DAG does: one step with one shard; else each partition and shard as a
    step of its own (``partition[3]``, ``allocate_shard[0]`` …, so their time and memory show
    apart), then ``allocate``, the merge."""
    allocated: dict[str, Any]
    if shards == 1:
        allocated = step("allocate", partial(allocate_run, run, fetched, open_path=open_path))
        return allocated
    partitions = [
        step(
            f"partition[{batch}]",
            partial(partition_run, run, fetched, batch, shards, open_path=open_path),
        )
        for batch in range(run.batch_count)
    ]
    parts = [
        step(
            f"allocate_shard[{shard}]",
            partial(
                allocate_shard_run, run, fetched, partitions, shard, shards, open_path=open_path
            ),
        )
        for shard in range(shards)
    ]
    allocated = step("allocate", partial(merge_run, run, fetched, parts, open_path=open_path))
    return allocated
