"""A month run in one process: the DAG's step functions (``pipeline``) chained, for the
command line, the benchmarks and the tests, so there is one way to run a month outside
Airflow and it is the DAG's."""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
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
from vapi_chargeback.process_memory import restart_peak, status_bytes
from vapi_chargeback.sharded import allocate_shard_run, merge_run, shard_count
from vapi_chargeback.verify.step import verification_enabled, verify_run

if TYPE_CHECKING:
    from vapi_chargeback.analytics.client import VapiAnalyticsClient

log = logging.getLogger(__name__)

DEFAULT_FETCH_CONCURRENCY = 4
"""Batches :func:`run_month` sends side by side: the DAG's fetch task runs at most four
at once per run (``max_active_tis_per_dagrun``), and an API that rate-limits sees the same
load either way."""

StepHook = Callable[[str], AbstractContextManager[object]]
"""Wraps each step of :func:`run_month`, given its name (the benchmark measures peak memory
and profiles through it)."""

MappedRunner = Callable[[Sequence[tuple[str, Callable[[], Any]]]], list[Any]]
"""Runs one mapped stage's named tasks and returns their results in task order."""

ClientFactory = Callable[[], "VapiAnalyticsClient"]
"""Makes a client like the run's own, in a worker process: a picklable callable, e.g.
``functools.partial(VapiAnalyticsClient, base_url, api_key)``."""


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
    task_peak_rss: dict[str, int] = field(default_factory=dict)
    """Peak RSS in bytes of each mapped task run in a worker process (``workers`` > 1), by
    step name: the worker's ``VmHWM`` when the task ended, restarted when it began."""

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
    workers: int = 1,
    client_factory: ClientFactory | None = None,
) -> MonthRun:
    """plan → fetch every batch → allocate → reconcile → verify → publish, as the DAG's tasks
    run them. ``verify`` is the DAG param ``verify_calls``: ``None`` follows the config.
    ``allocate_shards`` is the DAG param of that name (``None``: the DAG's automatic count,
    by the month's size); with more than one shard, allocate runs as the DAG's mapped tasks
    do, one after another here: ``allocate_shard`` each shard, then ``allocate`` (the
    merge). One process gains no parallelism from shards, only the extra merge, so the
    default here is one shard, the single allocate task. ``workers`` > 1 runs the mapped
    tasks (``allocate_shard``) that many at a time in worker processes, as that many Celery
    workers would; their time and peak RSS are measured in the task's own process
    (:attr:`MonthRun.task_peak_rss`).

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

    def fetch_all(run: RunInfo, pool: _WorkerPool | None) -> list[dict[str, Any]]:
        if pool is not None and client_factory is not None:
            return pool.run(
                [
                    (
                        f"fetch[{index}]",
                        partial(_fetch_with_own_client, client_factory, run, index, open_path),
                    )
                    for index in range(run.batch_count)
                ],
                in_flight=max(1, fetch_concurrency),
            )

        def one(index: int) -> dict[str, Any]:
            return fetch_batch(run, index, client, open_path=open_path).model_dump(mode="json")

        if fetch_concurrency <= 1 or run.batch_count <= 1:
            return [one(index) for index in range(run.batch_count)]
        with ThreadPoolExecutor(min(fetch_concurrency, run.batch_count)) as threads:
            return list(threads.map(one, range(run.batch_count)))

    peaks: dict[str, int] = {}
    with _WorkerPool(workers, seconds, peaks) if workers > 1 else nullcontext() as pool:
        run: RunInfo = step("plan", lambda: plan_run(settings, open_path=open_path, now=now))
        fetched: list[dict[str, Any]] = step("fetch", lambda: fetch_all(run, pool))
        shards = shard_count(fetched, allocate_shards)
        parts = sum_shards(
            run, fetched, shards, open_path, step, pool.run if pool is not None else None
        )
    allocated: dict[str, Any] = step(
        "allocate",
        partial(allocate_run, run, fetched, open_path=open_path)
        if parts is None
        else partial(merge_run, run, fetched, parts, open_path=open_path),
    )
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
    return MonthRun(run, fetched, allocated, reconciled, published, seconds, peaks)


def sum_shards(
    run: RunInfo,
    fetched: list[dict[str, Any]],
    shards: int,
    open_path: OpenPath,
    step: Callable[[str, Callable[[], Any]], Any],
    mapped: MappedRunner | None = None,
) -> list[Any] | None:
    """The shard tasks' results as the DAG's mapped ``allocate_shard`` makes them (``None``
    with one shard: the single allocate task sums and rounds at once), each shard a step of
    its own (``allocate_shard[0]`` …, so their time and memory show apart). ``mapped`` runs
    them (default: one after another, each through ``step``). The merge (``allocate``) is
    the caller's next step, once the worker processes are gone: a DAG's merge task does not
    share its worker with idle shard processes, and neither does its measured memory."""
    if shards == 1:
        return None

    def one_by_one(tasks: Sequence[tuple[str, Callable[[], Any]]]) -> list[Any]:
        return [step(name, task) for name, task in tasks]

    stage = mapped or one_by_one
    return stage(
        [
            (
                f"allocate_shard[{shard}]",
                partial(allocate_shard_run, run, fetched, shard, shards, open_path=open_path),
            )
            for shard in range(shards)
        ]
    )


class _WorkerPool:
    """Tasks run in ``workers`` worker processes, as Celery's pool runs them: each worker is
    started once (spawned, so it holds nothing of this process) and runs task after task,
    fetch and allocate alike, its peak RSS counter restarted before each, so a task's peak
    is its own (plus what the worker kept from earlier tasks: an overestimate, never an
    under-). The tasks are ``functools.partial`` objects of module functions over
    JSON-like arguments, so they pickle. Each task's wall seconds and peak go into
    ``seconds`` and ``peaks`` by its name. The workers end with the ``with`` block."""

    def __init__(self, workers: int, seconds: dict[str, float], peaks: dict[str, int]) -> None:
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        self._seconds = seconds
        self._peaks = peaks

    def __enter__(self) -> _WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def run(
        self, tasks: Sequence[tuple[str, Callable[[], Any]]], in_flight: int | None = None
    ) -> list[Any]:
        """The tasks' results in task order; at most ``in_flight`` handed to the workers at
        once (default: all, queued until a worker is free). The first failure raises and
        no further task is handed over."""
        limit = in_flight or max(1, len(tasks))
        futures: list[tuple[str, Future[tuple[Any, float, int]]]] = []
        pending: set[Future[tuple[Any, float, int]]] = set()
        for name, task in tasks:
            if len(pending) >= limit:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
            future = self._pool.submit(_measured_task, task)
            futures.append((name, future))
            pending.add(future)
        results = []
        for name, future in futures:
            result, took, peak = future.result()
            self._seconds[name] = took
            self._peaks[name] = peak
            results.append(result)
            log.info("%s: %.2f s, peak RSS %d MiB", name, took, peak >> 20)
        return results


def _fetch_with_own_client(
    client_factory: ClientFactory, run: RunInfo, index: int, open_path: OpenPath
) -> dict[str, Any]:
    """One fetch task in a worker process: a client of its own, as each DAG fetch task has."""
    with client_factory() as client:
        return fetch_batch(run, index, client, open_path=open_path).model_dump(mode="json")


def _measured_task(task: Callable[[], Any]) -> tuple[Any, float, int]:
    """Run ``task``; its result, wall seconds and the peak RSS (``VmHWM``) it reached."""
    restart_peak()
    began = time.perf_counter()
    result = task()
    took = time.perf_counter() - began
    return result, took, status_bytes("VmHWM")
