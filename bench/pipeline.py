"""Pipeline benchmark (issues 5, 16): the real run at the scale of a large org, measured in one go.

A month of 1.5M calls over 2,000 assistants and a config of 40 cost centers × 3 query
definitions, drawn from a realistic menu so that several owners ask identical questions.
The calls are generated once and cached under ``data/bench/``; the config and its mapping
CSV (``pipeline_org.py``) are written to a temporary folder each run.

The emulator runs as its own process on loopback (``localrun.emulator_process``), so its
memory is not the pipeline's. The month runs through ``runner.run_month`` — the DAG's
steps, plan → fetch every batch (four at a time, as the DAG) → allocate → reconcile →
publish, as plain functions in one fresh process, as the DAG's tasks would on one worker,
except the mapped tasks of a sharded allocate (``allocate_shard``), which run ``--workers``
at a time in warm worker processes, as the stack's two Celery workers run them; the fetch
tasks (four sent at a time) run in the worker processes too, each with its own client, as
Celery runs them (``--fetch-in threads``: in threads of the run's process, where one core
decodes every response: at 5M calls fetch took 71 s in threads and 55 s in two workers on
a quiet machine); the shard count is the DAG's own (automatic from the raw responses'
size) unless ``--allocate-shards`` sets it — and reports the run's wall time and each
step's time and peak RSS. Then, side by side:

1. ``POST /analytics`` requests sent (counted by the client's transport and in the
   emulator's access log) against the plan's batches (packed by estimated rows) and one
   request per definition; rows answered against the plan's estimates; the
   ``GET /assistant`` pages the names step lists are counted on both sides too;
2. wall time per step and in total;
3. peak RSS of each step (of a step that forks helpers, the sampled peak PSS of its
   process tree where larger: ``tree_memory.py``), and of the emulator separately;
4. DAG parse time: best of N ``runpy.run_path`` in fresh processes with ``airflow.sdk``
   already imported, as the dag-processor has it;
5. our workbook writer against xlsxwriter ``constant_memory`` on the statement's own
   detail rows (the functions of ``bench/writer.py``); these and the targets are in
   ``pipeline_report.py``.

    python bench/pipeline.py                      # 1.5M calls, 2,000 assistants, 40 cost centers
    python bench/pipeline.py --assistants 20000 --calls 5000000 --cost-centers 400
    python bench/pipeline.py --calls 200000 --assistants 300   # a quick look

Targets (issue 16): the plan → publish steps within :func:`wall_target` (20 s up to the
1.5M-call org, 120 s beyond), every step's peak RSS ≤ 1 GiB, the emulator's ≤ 2 GiB, no
query answered in pieces after an over-cap refusal (the row budget held), and the
request counts of both sides equal. Progress goes to stderr, the summary table to
stdout, the figures to ``bench/results/pipeline-<assistants>a-<calls>c.json``. With
``--check``, exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import math
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench's own modules
from pipeline_emulator import (
    ANALYTICS_ROUTE,
    API_KEY,
    ASSISTANTS_ROUTE,
    EMULATOR_THREADS,
    ROUTES,
    proc_status,
    requests_logged,
    reset_peak_rss,
)
from pipeline_emulator import emulator as emulator  # re-exported: bench/shards.py serves with it
from pipeline_org import MENU, TIMEZONE, write_org
from pipeline_org import center_ids as center_ids  # re-exported: the shard test reads it here
from pipeline_report import (
    MIB,
    SMALL_ORG_CALLS,
    TARGET_EMULATOR_RSS_BYTES,
    TARGET_LARGE_WALL_S,
    TARGET_PARSE_S,
    TARGET_RSS_BYTES,
    TARGET_SMALL_WALL_S,
    TARGET_WRITER_RATIO,
    dag_parse_seconds,
    estimate_facts,
    mib_text,
    plan_facts,
    print_table,
    report,
    response_facts,
    wall_target,
    writer_comparison,
)
from tree_memory import TreePeak

from vapi_emulator.assistants import sidecar_path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data" / "bench"
RESULTS_DIR = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent
RUN_ID = "bench"


# --------------------------------------------------------------------------- progress


_EPOCH_ENV = "BENCH_PIPELINE_STARTED"
_STARTED = float(os.environ.setdefault(_EPOCH_ENV, str(time.time())))
"""When the bench started; the spawned pipeline process inherits it through the environment."""


def say(message: str) -> None:
    """Progress on stderr, stamped with the seconds since the bench started."""
    print(f"[{time.time() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- inputs


def calls_file(args: argparse.Namespace) -> Path:
    """The cached calls of the bench org, generated once per parameter set."""
    name = f"calls-{args.month}-{args.assistants}a-{args.calls}c-s{args.seed}.parquet"
    path: Path = args.data_dir / name
    if path.exists():
        say(f"calls: cached {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        return path
    args.data_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.parquet")
    say(f"calls: generating {args.calls:,} calls, {args.assistants:,} assistants → {path}")
    subprocess.run(
        [
            str(BIN / "vapi-emulator"),
            "generate",
            "--month",
            args.month,
            "--months",
            "1",
            "--assistants",
            str(args.assistants),
            "--calls",
            str(args.calls),
            "--seed",
            str(args.seed),
            "--timezone",
            TIMEZONE,
            "--out",
            str(partial),
        ],
        check=True,
        stdout=sys.stderr,
    )
    sidecar_path(partial).replace(sidecar_path(path))
    partial.replace(path)
    return path


# --------------------------------------------------------------------------- the pipeline


class _CountingTransport(httpx.HTTPTransport):
    """Counts every HTTP attempt the client makes, retries included, by method and path, so
    each route is compared with the emulator's count of that route alone."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        route = f"{request.method} {request.url.path}"
        with self._lock:
            self.counts[route] = self.counts.get(route, 0) + 1
        return super().handle_request(request)


class _SayHandler(logging.Handler):
    """The runner's log of each mapped task (run in worker processes), as progress lines."""

    def emit(self, record: logging.LogRecord) -> None:
        say(f"pipeline: {record.getMessage()}")


def run_pipeline(spec: dict[str, Any]) -> dict[str, Any]:
    """``runner.run_month`` in this (fresh) process, each step timed, with its peak RSS."""
    started = time.perf_counter()
    runner_log = logging.getLogger("vapi_chargeback.runner")
    runner_log.addHandler(_SayHandler())
    runner_log.setLevel(logging.INFO)
    from vapi_chargeback.analytics.client import VapiAnalyticsClient
    from vapi_chargeback.pipeline import RunSettings
    from vapi_chargeback.runner import run_month

    imports_s = time.perf_counter() - started
    transport = _CountingTransport()
    client_options: dict[str, Any] = {}
    if spec["max_response_bytes"]:
        client_options["max_response_bytes"] = spec["max_response_bytes"]
    client_factory = (
        partial(VapiAnalyticsClient, spec["base_url"], API_KEY, **client_options)
        if spec["fetch_in"] == "workers" and spec["workers"] > 1
        else None
    )
    settings = RunSettings(
        config_path=spec["config_path"],
        output_url=spec["output_url"],
        default_output_url=spec["output_url"],
        month=spec["month"],
        run_id=RUN_ID,
    )
    per_step_peaks = reset_peak_rss()
    baseline_rss = proc_status("self", "VmRSS")
    profiler = cProfile.Profile() if spec["profile"] else None
    peaks: dict[str, int | None] = {}
    tree_peaks: dict[str, int] = {}
    """Steps that forked: the sampled peak of Σ PSS over the step's process tree."""

    @contextmanager
    def measured(name: str) -> Iterator[None]:
        if per_step_peaks:
            reset_peak_rss()
        began = time.perf_counter()
        if profiler:
            profiler.enable()
        tree = TreePeak()
        try:
            with tree:
                yield
        finally:
            if profiler:
                profiler.disable()
            own = proc_status("self", "VmHWM")
            peaks[name] = max(own or 0, tree.bytes) or None
            forked = f" (with its children: {mib_text(tree.bytes)} PSS)" if tree.bytes else ""
            if tree.bytes:
                tree_peaks[name] = tree.bytes
            say(
                f"pipeline: {name} {time.perf_counter() - began:.2f} s,"
                f" peak RSS {mib_text(own)}{forked}"
            )

    with VapiAnalyticsClient(
        spec["base_url"], API_KEY, transport=transport, **client_options
    ) as client:
        began = time.perf_counter()
        month = run_month(
            settings,
            client,
            around_step=measured,
            allocate_shards=spec["allocate_shards"],
            workers=spec["workers"],
            client_factory=client_factory,
        )
        wall = time.perf_counter() - began
    if profiler:
        profiler.dump_stats(spec["profile"])
    peaks.update(month.task_peak_rss)
    attempts = dict(transport.counts)
    if client_factory is not None:
        # Fetched in the workers, each with a client of its own: their attempts, as recorded.
        attempts[ANALYTICS_ROUTE] = attempts.get(ANALYTICS_ROUTE, 0) + month.requests
    return {
        "imports_seconds": imports_s,
        "baseline_rss_bytes": baseline_rss,
        "per_step_peaks": per_step_peaks,
        "step_seconds": month.step_seconds,
        "step_peak_rss_bytes": peaks,
        "step_tree_pss_bytes": tree_peaks,
        "workers": spec["workers"],
        "fetch_in": "workers" if client_factory is not None else "threads",
        "total_seconds": wall,
        "peak_rss_bytes": max((peak or 0) for peak in peaks.values()),
        "http_attempts": attempts,
        "run": month.run.model_dump(mode="json"),
        "fetched": month.fetched,
        "allocated": {key: value for key, value in month.allocated.items() if key != "fetched"},
        "reconciled": month.reconciled,
        "published": month.published,
    }


def _pipeline_child(spec: dict[str, Any], connection: Connection) -> None:
    try:
        connection.send(("ok", run_pipeline(spec)))
    except BaseException:
        connection.send(("error", traceback.format_exc()))
    finally:
        connection.close()


def pipeline_in_fresh_process(spec: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`run_pipeline` in a spawned process: its peak RSS is the pipeline's alone."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_pipeline_child, args=(spec, send), name="bench-pipeline")
    process.start()
    send.close()
    try:
        status, payload = receive.recv()
    except EOFError:
        process.join()
        raise RuntimeError(f"the pipeline process died (exit {process.exitcode})") from None
    process.join()
    if status != "ok":
        raise RuntimeError(f"the pipeline failed:\n{payload}")
    return dict(payload)


# --------------------------------------------------------------------------- main


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be a positive integer")
    return value


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(
            "Benchmark the chargeback pipeline end to end against the emulator: requests, "
            "wall time, peak RSS, DAG parse time and the workbook writer, in one run."
        ),
        epilog=(
            f"Targets (issues 5, 16): requests = the plan's batches, no query over the row cap,"
            f" wall ≤ {TARGET_SMALL_WALL_S:.0f} s up to {SMALL_ORG_CALLS:,} calls and"
            f" ≤ {TARGET_LARGE_WALL_S:.0f} s beyond, every step's RSS ≤ 1 GiB, emulator RSS"
            f" ≤ 2 GiB, DAG parse ≤ {TARGET_PARSE_S} s, writer ≤ {TARGET_WRITER_RATIO}×"
            " xlsxwriter. With --check, exit status 1 when one is missed."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--month", default="2026-10", help="statement month YYYY-MM")
    parser.add_argument("--calls", type=_positive, default=1_500_000, help="calls in the month")
    parser.add_argument("--assistants", type=_positive, default=2_000, help="assistants in the org")
    parser.add_argument("--seed", type=int, default=7, help="seed of the calls and the config")
    parser.add_argument(
        "--cost-centers", type=_positive, default=40, help="cost centers in the config"
    )
    parser.add_argument(
        "--definitions",
        type=_positive,
        default=3,
        help=f"query definitions per cost center, picked from a menu of {len(MENU)}",
    )
    parser.add_argument(
        "--parse-runs",
        type=_positive,
        default=5,
        help="fresh processes timing the DAG parse; the best counts",
    )
    parser.add_argument(
        "--writer-repeat",
        type=_positive,
        default=5,
        help="runs of each workbook writer; the best counts",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=DATA_DIR, help="cache of generated calls (gitignored)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="results JSON (default: bench/results/pipeline-<assistants>a-<calls>c.json)",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 when a target is missed"
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep config, emulator log, work folder and statements in this folder "
        "instead of a temporary one",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="write a cProfile of the pipeline steps here (read with python -m pstats)",
    )
    parser.add_argument(
        "--allocate-shards",
        type=_positive,
        help="shards of the allocate step (the DAG param allocate_shards); default: the DAG's"
        " automatic count from the size of the month's raw responses",
    )
    parser.add_argument(
        "--workers",
        type=_positive,
        default=2,
        help="mapped tasks (allocate_shard; fetch too with --fetch-in workers) run this many"
        " at a time in worker processes, as the stack's Celery workers run them (the stack"
        " has two)",
    )
    parser.add_argument(
        "--fetch-in",
        choices=("threads", "workers"),
        default="workers",
        help="fetch tasks in the worker processes, each with its own client, as Celery runs"
        " them (with --workers > 1), or in threads of the run's process",
    )
    parser.add_argument(
        "--emulator-threads",
        type=_positive,
        default=EMULATOR_THREADS,
        help="DuckDB threads of the emulator (vapi-emulator serve --threads): it shares the "
        "cores with the workers, answering one request per worker at a time",
    )
    parser.add_argument(
        "--emulator-max-rows",
        type=_positive,
        help="diagnostics: raise the emulator's per-query row cap (stock: 100,000) to measure "
        "plans that exceed it; the report says so",
    )
    parser.add_argument(
        "--max-response-mb",
        type=_positive,
        help="diagnostics: raise the client's max_response_bytes (default 64 MiB) in MiB",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from vapi_chargeback.row_budget import ROW_CAP

    args = parser().parse_args(argv)
    args.out = args.out or RESULTS_DIR / f"pipeline-{args.assistants}a-{args.calls}c.json"
    calls = calls_file(args)
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as temporary:
        scratch = args.keep.resolve() if args.keep else Path(temporary)
        scratch.mkdir(parents=True, exist_ok=True)
        config_path, org = write_org(scratch, args)
        say(
            f"config: {org['cost_centers']} cost centers × {args.definitions} definitions "
            f"({org['distinct_definitions']} distinct), mapping of {org['mapping_rows']} rows "
            f"({org['unmapped']} assistants unmapped, {org['mid_month_changes']} mid-month change)"
        )
        output = scratch / "output"
        load_before = os.getloadavg()
        say("emulator: loading calls")
        with emulator(
            calls, scratch / "emulator.log", args.emulator_max_rows, args.emulator_threads
        ) as server:
            say(f"emulator: serving on {server.url}, RSS {mib_text(server.loaded_rss)}")
            say("pipeline: plan → fetch → allocate → reconcile → publish in a fresh process")
            pipeline = pipeline_in_fresh_process(
                {
                    "config_path": str(config_path),
                    "output_url": output.as_uri(),
                    "base_url": server.url,
                    "month": args.month,
                    "profile": str(args.profile.resolve()) if args.profile else None,
                    "allocate_shards": args.allocate_shards,
                    "workers": args.workers,
                    "fetch_in": args.fetch_in,
                    "max_response_bytes": args.max_response_mb * MIB
                    if args.max_response_mb
                    else None,
                }
            )
        load_after = os.getloadavg()
        server_requests = requests_logged(server.log)
        work = Path(pipeline["run"]["work_url"].removeprefix("file://"))
        plan = plan_facts(work)
        say("responses: counting rows of the stored raw responses")
        responses = response_facts(work, pipeline["fetched"])
        say(f"DAG parse: {args.parse_runs} fresh processes")
        parse_times = dag_parse_seconds(args.parse_runs, scratch)
        say(f"writer: ours vs xlsxwriter constant_memory, best of {args.writer_repeat}")
        writer = writer_comparison(work, args.writer_repeat, scratch)

    minimal = math.ceil(plan["queries"] / plan["batch_limit"])
    client_requests = pipeline["http_attempts"]
    requests = {
        "client": client_requests.get(ANALYTICS_ROUTE, 0),
        "server": server_requests[ANALYTICS_ROUTE],
        "minimal": minimal,
        "naive": plan["definitions"] + 2,
        "assistants_client": (
            client_requests.get(ASSISTANTS_ROUTE, 0) if pipeline["fetch_in"] == "threads" else None
        ),
        "assistants_server": server_requests[ASSISTANTS_ROUTE],
        "other_client": {
            route: count for route, count in client_requests.items() if route not in ROUTES
        },
    }
    results: dict[str, Any] = {
        "parameters": {
            key: str(value) if isinstance(value, Path) else value
            for key, value in vars(args).items()
        },
        "machine": {
            "python": platform.python_version(),
            "cpus": len(os.sched_getaffinity(0)),
            "platform": platform.platform(),
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
        "org": org,
        "plan": plan,
        "requests": requests,
        "responses": responses,
        "pipeline": pipeline,
        "estimates": estimate_facts(plan, responses["rows_per_query"]),
        "wall_target_seconds": wall_target(args.calls),
        "emulator": {
            "loaded_rss_bytes": server.loaded_rss,
            "peak_rss_bytes": server.peak_rss,
            "max_result_rows": args.emulator_max_rows or "stock",
            "row_cap": args.emulator_max_rows or ROW_CAP,
        },
        "dag_parse_seconds": parse_times,
        "writer": writer,
    }
    split = bool(responses["split_queries"])
    results["targets"] = {
        "requests": requests["client"] == requests["server"]
        and (
            requests["client"] > plan["batches"] if split else requests["client"] == plan["batches"]
        ),
        "no_splits": not split,
        "wall": pipeline["total_seconds"] <= results["wall_target_seconds"],
        "rss": pipeline["peak_rss_bytes"] <= TARGET_RSS_BYTES,
        "emulator_rss": (server.peak_rss or 0) <= TARGET_EMULATOR_RSS_BYTES,
        "parse": min(parse_times) <= TARGET_PARSE_S,
        "writer": writer["ratio"] <= TARGET_WRITER_RATIO,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(
        f"{args.calls:,} calls, {args.assistants:,} assistants, {org['cost_centers']} cost centers"
        f" × {args.definitions} definitions, {args.month}, {results['machine']['cpus']} CPUs"
        f" (1-min load average {load_before[0]:.1f} before, {load_after[0]:.1f} after the run:"
        " other work on the machine slows every figure)"
    )
    if args.emulator_max_rows or args.max_response_mb:
        print(
            "NOTE: diagnostic overrides in effect (emulator row cap "
            f"{args.emulator_max_rows or 'stock'}, client max response "
            f"{args.max_response_mb or 'default'} MiB)"
        )
    print_table(report(results))
    print(f"results: {args.out}")
    missed = [name for name, ok in results["targets"].items() if not ok]
    if missed:
        print(f"missed: {', '.join(missed)}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
