"""Pipeline benchmark (issues 5, 16): the real run at the scale of a large org, measured in one go.

A month of 1.5M calls over 2,000 assistants and a config of 40 cost centers × 3 query
definitions, drawn from a realistic menu so that several owners ask identical questions.
The calls are generated once and cached under ``data/bench/``; the config and its mapping
CSV (mostly mapped assistants, some unmapped, a history row at the month start, one
mid-month change of cost center) are written to a temporary folder each run.

The emulator runs as its own process on loopback (``localrun.emulator_process``), so its
memory is not the pipeline's. The month runs through ``runner.run_month`` — the DAG's
steps, plan → fetch every batch (four at a time, as the DAG) → allocate → reconcile →
publish, as plain functions in one fresh process, as the DAG's tasks would on one worker —
and reports wall time and peak RSS per step. Then, side by side:

1. ``POST /analytics`` requests sent (counted by the client's transport and in the
   emulator's access log) against one request per definition, and against ceil(distinct
   queries / batch limit), which must equal the plan's batch count; the ``GET /assistant``
   pages the names step lists are counted on both sides too, and shown apart;
2. wall time per step and in total;
3. peak RSS of the pipeline process, and of the emulator separately;
4. DAG parse time: best of N ``runpy.run_path`` in fresh processes with ``airflow.sdk``
   already imported, as the dag-processor has it;
5. our workbook writer against xlsxwriter ``constant_memory`` on the statement's own
   detail rows (the functions of ``bench/writer.py``).

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
import importlib.util
import json
import math
import multiprocessing
import os
import platform
import random
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data" / "bench"
RESULTS_DIR = ROOT / "bench" / "results"
DAG_FILE = ROOT / "dags" / "vapi_chargeback_monthly.py"
WRITER_BENCH = ROOT / "bench" / "writer.py"
BIN = Path(sys.executable).parent
API_KEY = "bench-pipeline-key"
RUN_ID = "bench"
TIMEZONE = "Europe/Berlin"
"""The generator's default org zone: its office hours and months are this zone's."""
VARIABLE_KEY = "costCenter"
EMULATOR_START_TIMEOUT_S = 120.0

SMALL_ORG_CALLS = 1_500_000
"""Up to this many calls the run must take :data:`TARGET_SMALL_WALL_S`, beyond it
:data:`TARGET_LARGE_WALL_S` (issue 16's two sizes)."""
TARGET_SMALL_WALL_S = 20.0
TARGET_LARGE_WALL_S = 120.0
TARGET_RSS_BYTES = 1 << 30
"""Every pipeline step (a task on a worker) within this peak RSS."""
TARGET_EMULATOR_RSS_BYTES = 2 << 30
TARGET_PARSE_S = 0.3
TARGET_WRITER_RATIO = 1.3
MIB = 1 << 20

DEMO_CENTERS = ("sales", "support", "marketing", "operations")
"""The generated calls carry these as ``costCenter`` values (plus an unknown one and ""),
so they must be cost centers of the config for the variable-value rule to fire."""
MORE_CENTERS = (
    "emea-sales",
    "apac-sales",
    "partner-sales",
    "renewals",
    "retention",
    "onboarding",
    "customer-success",
    "billing",
    "collections",
    "claims",
    "returns",
    "warranty",
    "field-service",
    "dispatch",
    "scheduling",
    "logistics",
    "procurement",
    "recruiting",
    "benefits",
    "it-helpdesk",
    "security-desk",
    "facilities",
    "legal-intake",
    "compliance",
    "accounts-payable",
    "accounts-receivable",
    "payroll",
    "product-research",
    "market-research",
    "events",
    "press-office",
    "loyalty",
    "concierge",
    "reservations",
    "pharmacy-line",
    "fleet",
)
TEAM_SUFFIXES = ("inbound", "outbound", "tier1", "tier2", "night", "vip")
UNMAPPED_EVERY = 25
"""One assistant in this many has no mapping row (on top of the demo org's two)."""
HISTORY_EVERY = 20
"""One mapped assistant in this many changed team at the start of the month (a boundary
on the period's first day, which must not split anything)."""
MAPPED_SINCE = date(2025, 1, 1)


@dataclass(frozen=True)
class MenuItem:
    """A query definition owners pick; ``weight`` = how popular it is."""

    id: str
    title: str
    dimensions: tuple[str, ...]
    step: str | None
    metrics: tuple[str, ...]
    weight: int


MENU = (
    MenuItem(
        "cost-by-assistant-day",
        "Cost by assistant by day",
        ("assistantId",),
        "day",
        ("calls", "minutes", "cost"),
        10,
    ),
    MenuItem(
        "cost-by-assistant",
        "Cost by assistant",
        ("assistantId",),
        None,
        ("calls", "minutes", "cost", "transport", "stt", "llm", "tts", "vapi"),
        6,
    ),
    MenuItem(
        "minutes-by-ended-reason",
        "Minutes by ended reason",
        ("endedReason",),
        None,
        ("calls", "minutes", "avg_minutes_per_call"),
        6,
    ),
    MenuItem("daily-cost", "Daily cost", (), "day", ("calls", "cost", "avg_cost_per_minute"), 6),
    MenuItem(
        "calls-by-success",
        "Calls by success evaluation",
        ("analysis.successEvaluation",),
        "week",
        ("calls", "cost", "avg_cost_per_call"),
        5,
    ),
    MenuItem(
        "components-by-type",
        "Cost components by call type",
        ("type",),
        None,
        ("cost", "transport", "stt", "llm", "tts", "vapi"),
        4,
    ),
    MenuItem(
        "calls-by-status",
        "Calls by status and ended reason",
        ("status", "endedReason"),
        "month",
        ("calls", "minutes"),
        3,
    ),
    MenuItem(
        "weekly-cost-by-assistant",
        "Weekly cost by assistant",
        ("assistantId",),
        "week",
        ("cost", "calls", "avg_cost_per_call"),
        3,
    ),
    MenuItem(
        "success-by-type",
        "Success by call type",
        ("type", "analysis.successEvaluation"),
        "week",
        ("calls", "avg_cost_per_call"),
        2,
    ),
)


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
    partial.replace(path)
    return path


class _Dumper(yaml.SafeDumper):
    """Writes ``Decimal`` as a plain YAML number, as people type amounts."""


_Dumper.add_representer(
    Decimal, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:float", str(value))
)


def center_ids(count: int) -> list[str]:
    """The demo org's four cost centers first (the calls name them), then realistic slugs."""
    names = [*DEMO_CENTERS, *MORE_CENTERS]
    names += [f"cost-center-{index:03d}" for index in range(len(names), count)]
    return names[:count]


def pick_definitions(rng: random.Random, count: int) -> list[MenuItem]:
    """``count`` distinct menu items, popular ones more often: owners copy each other."""
    chosen: list[MenuItem] = []
    while len(chosen) < min(count, len(MENU)):
        item = rng.choices(MENU, weights=[item.weight for item in MENU])[0]
        if item not in chosen:
            chosen.append(item)
    return chosen


def write_org(folder: Path, args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """``chargeback.yaml`` and ``assistant_teams.csv`` of the bench org; returns the config path
    and a few facts about them for the report."""
    from vapi_emulator.data import demo_org

    rng = random.Random(args.seed)
    centers = center_ids(args.cost_centers)
    teams = {
        center: [
            f"{center}-{suffix}" for suffix in rng.sample(TEAM_SUFFIXES, rng.choice((1, 2, 3)))
        ]
        for center in centers
    }
    all_teams = [(team, center) for center in centers for team in teams[center]]
    document: dict[str, Any] = {
        "org": {"name": "Bench Voice Co", "timezone": TIMEZONE},
        "currency": "USD",
        "output": (folder / "unused-output").as_uri(),
        "mapping": "assistant_teams.csv",
        "components": ["transport", "stt", "llm", "tts", "vapi"],
        "variable_key": VARIABLE_KEY,
        "settlement_delay_hours": 6,
        "finance_email": "finance@example.com",
        "cost_centers": [
            {
                "id": center,
                "name": center.replace("-", " ").title(),
                "owner_email": f"{center}-owner@example.com",
                "queries": [
                    {
                        "id": item.id,
                        "title": item.title,
                        "dimensions": list(item.dimensions),
                        **({"step": item.step} if item.step else {}),
                        "metrics": list(item.metrics),
                    }
                    for item in pick_definitions(rng, args.definitions)
                ],
            }
            for center in centers
        ],
        "shared_costs": [
            {"name": "platform-fee", "amount": Decimal("2500.00"), "method": "even"},
            {
                "name": "phone-numbers",
                "amount": Decimal("1234.56"),
                "method": "proportional",
                "driver": "calls",
            },
            {
                "name": "support-tooling",
                "amount": Decimal("999.99"),
                "method": "fixed",
                "percentages": {centers[0]: 40, centers[1]: 60},
            },
            {
                "name": "calls-without-assistant",
                "source": "calls-without-assistant",
                "method": "proportional",
                "driver": "cost",
            },
        ],
    }
    config_path = folder / "chargeback.yaml"
    config_path.write_text(yaml.dump(document, Dumper=_Dumper, sort_keys=False), encoding="utf-8")

    org = demo_org(args.seed, args.assistants)
    first_day = date.fromisoformat(f"{args.month}-01")
    move_day = first_day.replace(day=15)
    never = {assistant.id for assistant in org.unmapped}
    lines = ["assistant_id,team,cost_center_id,valid_from,valid_to"]
    facts = {"unmapped": 0, "history_rows": 0, "mid_month_changes": 0}
    for index, assistant in enumerate(org.assistants):
        if assistant.id in never or index % UNMAPPED_EVERY == UNMAPPED_EVERY - 1:
            facts["unmapped"] += 1
            continue
        team, center = rng.choice(all_teams)
        if assistant.id == org.mover.id:
            other_team, other = rng.choice([pair for pair in all_teams if pair[1] != center])
            lines.append(f"{assistant.id},{team},{center},{MAPPED_SINCE},{move_day - timedelta(1)}")
            lines.append(f"{assistant.id},{other_team},{other},{move_day},")
            facts["mid_month_changes"] += 1
        elif index % HISTORY_EVERY == 0:
            old_team, old = rng.choice(all_teams)
            lines.append(
                f"{assistant.id},{old_team},{old},{MAPPED_SINCE},{first_day - timedelta(1)}"
            )
            lines.append(f"{assistant.id},{team},{center},{first_day},")
            facts["history_rows"] += 1
        else:
            lines.append(f"{assistant.id},{team},{center},{MAPPED_SINCE},")
    (folder / "assistant_teams.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    definitions = [
        json.dumps(query, sort_keys=True)
        for center in document["cost_centers"]
        for query in center["queries"]
    ]
    facts.update(
        cost_centers=len(centers),
        definitions=len(definitions),
        distinct_definitions=len(set(definitions)),
        mapping_rows=len(lines) - 1,
        assistants=args.assistants,
    )
    return config_path, facts


# --------------------------------------------------------------------------- processes


def proc_status(pid: int | str, field: str) -> int | None:
    """A memory figure of ``/proc/<pid>/status`` (``VmHWM`` = peak RSS) in bytes."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS counter of this process, so each step gets its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


_RAISED_CAP = (
    "import sys, vapi_emulator.engine as engine; engine.MAX_RESULT_ROWS = int(sys.argv[1]); "
    "from vapi_emulator.cli import main; sys.exit(main(sys.argv[2:]))"
)


@dataclass
class Emulator:
    url: str
    pid: int
    log: Path
    loaded_rss: int | None = None
    peak_rss: int | None = None


@contextmanager
def emulator(calls: Path, log: Path, max_rows: int | None) -> Iterator[Emulator]:
    """``vapi-emulator serve`` in its own process (``localrun``'s launcher), logging each request."""
    from vapi_chargeback import localrun

    launcher = () if max_rows is None else (sys.executable, "-c", _RAISED_CAP, str(max_rows))
    with localrun.emulator_process(
        [calls],
        API_KEY,
        log=log,
        extra_args=["--log-level", "info"],
        launcher=launcher,
        start_timeout=EMULATOR_START_TIMEOUT_S,
    ) as process:
        running = Emulator(process.url, process.pid, log)
        running.loaded_rss = proc_status(process.pid, "VmRSS")
        try:
            yield running
        finally:
            running.peak_rss = proc_status(process.pid, "VmHWM")


ANALYTICS_ROUTE = "POST /analytics"
ASSISTANTS_ROUTE = "GET /assistant"
ROUTES = (ANALYTICS_ROUTE, ASSISTANTS_ROUTE)
"""What the pipeline asks the API: the plan's batches, and the assistants' names."""


def requests_logged(log: Path) -> dict[str, int]:
    """Access-log lines per route of :data:`ROUTES`: the server's own counts."""
    lines = log.read_text(errors="replace").splitlines()
    return {
        route: sum(f'"{route} ' in line or f'"{route}?' in line for line in lines)
        for route in ROUTES
    }


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


def run_pipeline(spec: dict[str, Any]) -> dict[str, Any]:
    """``runner.run_month`` in this (fresh) process, each step timed, with its peak RSS."""
    started = time.perf_counter()
    from vapi_chargeback.analytics.client import VapiAnalyticsClient
    from vapi_chargeback.pipeline import RunSettings
    from vapi_chargeback.runner import run_month

    imports_s = time.perf_counter() - started
    transport = _CountingTransport()
    client_options: dict[str, Any] = {}
    if spec["max_response_bytes"]:
        client_options["max_response_bytes"] = spec["max_response_bytes"]
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

    @contextmanager
    def measured(name: str) -> Iterator[None]:
        if per_step_peaks:
            reset_peak_rss()
        began = time.perf_counter()
        if profiler:
            profiler.enable()
        try:
            yield
        finally:
            if profiler:
                profiler.disable()
            peaks[name] = proc_status("self", "VmHWM")
            say(
                f"pipeline: {name} {time.perf_counter() - began:.2f} s, peak RSS {_mib(peaks[name])}"
            )

    with VapiAnalyticsClient(
        spec["base_url"], API_KEY, transport=transport, **client_options
    ) as client:
        month = run_month(settings, client, around_step=measured)
    if profiler:
        profiler.dump_stats(spec["profile"])
    return {
        "imports_seconds": imports_s,
        "baseline_rss_bytes": baseline_rss,
        "per_step_peaks": per_step_peaks,
        "step_seconds": month.step_seconds,
        "step_peak_rss_bytes": peaks,
        "total_seconds": sum(month.step_seconds.values()),
        "peak_rss_bytes": max((peak or 0) for peak in peaks.values()),
        "http_attempts": transport.counts,
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


# --------------------------------------------------------------------------- facts


def response_facts(work: Path, fetched: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows and bytes per query of the stored raw responses (read after the timed run)."""
    from vapi_chargeback.analytics.decode import iter_json_array

    rows: dict[str, int] = {}
    for batch in fetched:
        owner = {piece: name for name, parts in batch["pieces"].items() for piece in parts}
        for item, _, _ in iter_json_array((work / "raw" / batch["file"]).read_bytes()):
            name = owner.get(item["name"], item["name"])
            rows[name] = rows.get(name, 0) + len(item["result"])
    return {
        "response_bytes": sum(batch["size"] for batch in fetched),
        "result_rows": sum(rows.values()),
        "rows_per_query": rows,
        "max_rows_per_query": max(rows.values(), default=0),
        "split_queries": sorted(name for batch in fetched for name in batch["pieces"]),
    }


def estimate_facts(plan: dict[str, Any], rows: dict[str, int]) -> dict[str, Any]:
    """The plan's row estimates against the rows answered, per query and in all."""
    estimated = plan["estimated_rows"]
    ratios = {
        name: rows.get(name, 0) / estimated[name] for name in estimated if estimated[name] > 1
    }
    return {
        "estimated_rows": sum(estimated.values()),
        "max_estimated_rows_per_query": max(estimated.values(), default=0),
        "max_actual_over_estimate": max(ratios.values(), default=0.0),
        "min_actual_over_estimate": min(ratios.values(), default=0.0),
    }


def plan_facts(work: Path) -> dict[str, Any]:
    from vapi_chargeback.plan import Plan

    plan = Plan.model_validate_json((work / "plan.json").read_bytes())
    logical = {definition.query for definition in plan.definitions} | {plan.core_query}
    return {
        "batch_limit": plan.max_queries_per_request,
        "queries": len(plan.queries),
        "batches": len(plan.batches),
        "estimated_rows": plan.estimated_rows,
        "definitions": len(plan.definitions),
        "questions": len(logical) + 1,
        "query_names": plan.query_names,
    }


# --------------------------------------------------------------------------- parse + writer


def dag_parse_seconds(runs: int, scratch: Path) -> list[float]:
    """One ``runpy.run_path`` of the DAG file per fresh process, ``airflow.sdk`` preloaded."""
    probe = textwrap.dedent(
        f"""
        import runpy, time
        import airflow.sdk  # the dag-processor has Airflow loaded already
        started = time.perf_counter()
        runpy.run_path({str(DAG_FILE)!r})
        print(time.perf_counter() - started)
        """
    )
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(scratch / "airflow-home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FILE.parent),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
    )
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env=env,
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return times


def load_writer_bench() -> ModuleType:
    """``bench/writer.py``: its ``ours``/``theirs``/``best_of`` are the comparison we reuse."""
    spec = importlib.util.spec_from_file_location("bench_writer", WRITER_BENCH)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot import {WRITER_BENCH}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [name for name in ("ours", "theirs", "best_of") if not hasattr(module, name)]
    if missing:
        raise RuntimeError(f"{WRITER_BENCH} lacks {', '.join(missing)}")
    return module


def writer_comparison(work: Path, repeat: int, scratch: Path) -> dict[str, Any]:
    """Both writers on the reconciled statement's detail rows, best of ``repeat`` each."""
    from vapi_chargeback import statement_json
    from vapi_chargeback.pipeline import RECONCILED_FILE
    from vapi_chargeback.statements.totals import summarize

    writer = load_writer_bench()
    statement = statement_json.loads((work / RECONCILED_FILE).read_bytes())
    totals = summarize(statement)
    ours = writer.best_of(
        repeat, lambda path: writer.ours(statement, totals, path), scratch / "ours.xlsx"
    )
    theirs = writer.best_of(
        repeat, lambda path: writer.theirs(statement, totals, path), scratch / "xlsxwriter.xlsx"
    )
    return {
        "lines": len(statement.lines),
        "repeat": repeat,
        "ours_seconds": ours,
        "xlsxwriter_seconds": theirs,
        "ratio": ours / theirs,
    }


# --------------------------------------------------------------------------- report


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / MIB:,.0f} MiB"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The summary table rows: what, measured, target, PASS/FAIL (empty for context)."""
    pipeline, plan = results["pipeline"], results["plan"]
    requests, responses = results["requests"], results["responses"]
    estimates = results["estimates"]
    rows: list[tuple[str, str, str, str]] = [
        (
            "POST /analytics sent (client / emulator log)",
            f"{requests['client']} / {requests['server']}",
            f"= the plan's {plan['batches']} batches (+ any split's requests)",
            verdict(results["targets"]["requests"]),
        ),
        (
            "  queries answered in pieces (over the row cap)",
            str(len(responses["split_queries"])),
            "0: the row budget held",
            verdict(results["targets"]["no_splits"]),
        ),
        (
            "  rows per query: most answered / most estimated",
            f"{responses['max_rows_per_query']:,} / {estimates['max_estimated_rows_per_query']:,}",
            f"≤ cap {results['emulator']['row_cap']:,}",
            "",
        ),
        (
            "  answered / estimated rows per query",
            f"{estimates['min_actual_over_estimate']:.2f}–"
            f"{estimates['max_actual_over_estimate']:.2f}",
            "≤ 1: the estimate is conservative",
            "",
        ),
        (
            "  ceil(queries / batch limit)",
            f"ceil({plan['queries']} / {plan['batch_limit']}) = {requests['minimal']}",
            "requests are packed by estimated rows too",
            "",
        ),
        (
            "  GET /assistant pages (client / emulator log)",
            f"{requests['assistants_client']} / {requests['assistants_server']}",
            "the names step, apart from the plan",
            "",
        ),
        *(
            (f"  other: {route}", str(count), "none expected", "")
            for route, count in sorted(requests["other_client"].items())
        ),
        (
            "  naive: one request per definition",
            f"{requests['naive']}",
            f"{plan['definitions']} definitions + allocation + org total",
            "",
        ),
        (
            "  distinct questions → compiled queries",
            f"{plan['questions']} → {plan['queries']}",
            "",
            "",
        ),
        (
            "  response size / result rows (estimated)",
            f"{responses['response_bytes'] / 1e6:,.1f} MB / {responses['result_rows']:,}"
            f" ({estimates['estimated_rows']:,})",
            "",
            "",
        ),
    ]
    for name, (count, seconds, peak) in step_groups(pipeline).items():
        label = f"  {name}" if count == 1 else f"  {name} × {count}"
        rows.append((label, f"{seconds:.2f} s", f"peak RSS {_mib(peak)}", ""))
    rows += [
        (
            "pipeline wall time (plan → publish, steps one after another)",
            f"{pipeline['total_seconds']:.1f} s",
            f"≤ {results['wall_target_seconds']:.0f} s",
            verdict(results["targets"]["wall"]),
        ),
        (
            "pipeline peak RSS (the largest step's)",
            _mib(pipeline["peak_rss_bytes"]),
            f"≤ {_mib(TARGET_RSS_BYTES)} per step",
            verdict(results["targets"]["rss"]),
        ),
        (
            "emulator RSS loaded / peak (own process)",
            f"{_mib(results['emulator']['loaded_rss_bytes'])} / "
            f"{_mib(results['emulator']['peak_rss_bytes'])}",
            f"peak ≤ {_mib(TARGET_EMULATOR_RSS_BYTES)}",
            verdict(results["targets"]["emulator_rss"]),
        ),
        (
            f"DAG parse, best of {len(results['dag_parse_seconds'])}",
            f"{min(results['dag_parse_seconds']):.3f} s",
            f"≤ {TARGET_PARSE_S} s",
            verdict(results["targets"]["parse"]),
        ),
        (
            f"writer ours / xlsxwriter ({results['writer']['lines']:,} lines)",
            f"{results['writer']['ours_seconds']:.3f} / "
            f"{results['writer']['xlsxwriter_seconds']:.3f} s = "
            f"{results['writer']['ratio']:.2f}×",
            f"≤ {TARGET_WRITER_RATIO}×",
            verdict(results["targets"]["writer"]),
        ),
    ]
    return rows


def step_groups(pipeline: dict[str, Any]) -> dict[str, tuple[int, float, int | None]]:
    """Steps by kind (``partition[3]`` is a ``partition``): how many, their seconds, the
    largest peak RSS among them."""
    groups: dict[str, tuple[int, float, int | None]] = {}
    for name, seconds in pipeline["step_seconds"].items():
        kind = name.split("[")[0]
        peak = pipeline["step_peak_rss_bytes"].get(name)
        count, total, largest = groups.get(kind, (0, 0.0, None))
        groups[kind] = (count + 1, total + seconds, max(largest or 0, peak or 0) or None)
    return groups


def wall_target(calls: int) -> float:
    """Issue 16: the 1.5M-call org within 20 s, the 5M-call org within 120 s."""
    return TARGET_SMALL_WALL_S if calls <= SMALL_ORG_CALLS else TARGET_LARGE_WALL_S


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    header = ("measure", "measured", "target", "")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    line = "  ".join("-" * width for width in widths)
    print(line)
    print("  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(line)


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
        with emulator(calls, scratch / "emulator.log", args.emulator_max_rows) as server:
            say(f"emulator: serving on {server.url}, RSS {_mib(server.loaded_rss)}")
            say("pipeline: plan → fetch → allocate → reconcile → publish in a fresh process")
            pipeline = pipeline_in_fresh_process(
                {
                    "config_path": str(config_path),
                    "output_url": output.as_uri(),
                    "base_url": server.url,
                    "month": args.month,
                    "profile": str(args.profile.resolve()) if args.profile else None,
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
        "assistants_client": client_requests.get(ASSISTANTS_ROUTE, 0),
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
