"""Benchmark of vapi-emulator: a realistic 20-query batch over 1.5M generated calls.

Generates (or reuses from ``data/bench/``) the demo org's calls, starts
``vapi-emulator serve`` as its own process (``localrun.emulator_process``), and times the
same batch two ways:

- over HTTP: one ``POST /analytics`` with all 20 queries, until the whole body has
  arrived (validation, SQL, JSON rendering and transfer included);
- in-process: the same 20 compiled SQL statements executed one after the other on one
  cursor of a DuckDB database of this process, loaded from the same file, rows fetched
  into Python (what a client embedding DuckDB would do).

The two sides are timed in turn (one batch over HTTP, one in process, and again), so
that on a shared machine both meet the same load. The peak RSS is the server process's
own (``VmHWM``), which includes loading the file.

Prints p50/p95 of both, their ratio, the server's peak RSS and the generation time, and
writes everything to ``bench/results/emulator.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import httpx
import numpy as np

from vapi_chargeback import localrun
from vapi_chargeback.analytics.models import AnalyticsQueryDTO
from vapi_emulator.data import generate_calls_file
from vapi_emulator.engine import Engine
from vapi_emulator.resolve import resolve

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "data" / "bench"
RESULTS = ROOT / "bench" / "results" / "emulator.json"
API_KEY = "bench-key"
ZONE = "Europe/Berlin"
SERVER_START_TIMEOUT_S = 120.0
"""Loading 1.5M calls takes 5–20 s by machine load; a server not up by then is stuck."""
TARGETS = {"p50_ms": 250.0, "ratio": 1.5, "rss_gib": 1.5, "generate_s": 60.0}


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--calls", type=int, default=1_500_000, help="total calls to generate (default 1,500,000)"
    )
    parser.add_argument(
        "--months",
        type=int,
        default=12,
        help="months the calls are spread over, from --first-month (default 12)",
    )
    parser.add_argument(
        "--first-month", default="2026-01", help="first generated month, YYYY-MM (default 2026-01)"
    )
    parser.add_argument(
        "--query-month",
        default="2026-10",
        help="the statement month the batch asks about, YYYY-MM, local to Europe/Berlin "
        "(default 2026-10, which contains the end of summer time)",
    )
    parser.add_argument(
        "--requests", type=int, default=40, help="timed batches per side (default 40, at least 30)"
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches first (default 3)")
    parser.add_argument(
        "--full-range-requests",
        type=int,
        default=5,
        help="also time this many batches over all generated months, for information (default 5; 0 skips)",
    )
    parser.add_argument(
        "--regenerate",
        action="store_true",
        help="regenerate the calls even if cached in data/bench/",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit with status 1 when a target is missed (p50, ratio, RSS, generation time)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help=f"JSON results file (default {RESULTS.relative_to(ROOT)})",
    )
    options = parser.parse_args()
    if options.requests < 30:
        parser.error("--requests must be at least 30 for a meaningful p95")
    if options.calls % options.months:
        parser.error("--calls must divide evenly by --months (calls are generated per month)")
    return options


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def calls_file(options: argparse.Namespace) -> tuple[Path, float, bool]:
    """The cached calls file (generated if missing) and its generation time in seconds."""
    per_month = options.calls // options.months
    path = CACHE / f"calls-{options.first_month}-{options.months}m-{per_month}-seed7.parquet"
    sidecar = path.with_suffix(".json")
    if path.exists() and sidecar.exists() and not options.regenerate:
        return path, float(json.loads(sidecar.read_text())["generate_s"]), True
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    generate_calls_file(
        path, options.first_month, months=options.months, calls_per_month=per_month, progress=_say
    )
    seconds = time.perf_counter() - started
    sidecar.write_text(json.dumps({"generate_s": seconds, "calls": options.calls}))
    return path, seconds, False


def month_range(month: str) -> tuple[str, str]:
    """The local calendar month in Europe/Berlin as UTC instants."""
    year, number = (int(part) for part in month.split("-"))
    zone = ZoneInfo(ZONE)
    start = datetime(year, number, 1, tzinfo=zone)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC).isoformat(), end.astimezone(UTC).isoformat()


def batch(start: str, end: str) -> list[dict[str, Any]]:
    """The 20 queries a chargeback run and a finance/capacity dashboard ask about one month.

    Concurrency is asked once, org-wide per day: Vapi limits concurrent calls per org, so
    that is the peak anyone plans capacity with.
    """

    def query(name: str, operations: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
        time_range = {"start": start, "end": end, "timezone": extra.pop("timezone", ZONE)}
        if "step" in extra:
            time_range["step"] = extra.pop("step")
        return {
            "table": extra.pop("table", "call"),
            "name": name,
            "timeRange": time_range,
            "operations": [{"operation": op, "column": column} for op, column in operations],
            **extra,
        }

    components = [("sum", f"costBreakdown.{c}") for c in ("transport", "stt", "llm", "tts", "vapi")]
    by_cost_center = [{"key": "costCenter"}]
    return [
        query(
            "components-by-assistant-day",
            [("sum", "cost"), *components, ("count", "id"), ("sum", "duration")],
            groupBy=["assistantId"],
            step="day",
        ),
        query(
            "org-total",
            [("sum", "cost"), ("count", "id"), ("sum", "minutesUsed")],
            table="subscription",
        ),
        query("by-ended-reason", [("count", "id"), ("sum", "cost")], groupBy=["endedReason"]),
        query(
            "by-type-status",
            [("count", "id"), ("sum", "cost"), ("avg", "duration")],
            groupBy=["type", "status"],
        ),
        query(
            "cost-center-by-assistant-day",
            [("sum", "cost"), ("count", "id")],
            groupBy=["assistantId"],
            groupByVariableValue=by_cost_center,
            step="day",
        ),
        query(
            "cost-center-month",
            [("sum", "cost"), ("count", "id")],
            groupByVariableValue=by_cost_center,
        ),
        query(
            "customer-tier",
            [("count", "id"), ("sum", "cost")],
            groupByVariableValue=[{"key": "customerTier"}],
        ),
        query(
            "calls-minutes-by-type-day",
            [("count", "id"), ("sum", "minutesUsed")],
            groupBy=["type"],
            step="day",
        ),
        query("peak-concurrency-by-day", [("max", "concurrency"), ("count", "id")], step="day"),
        query(
            "success-by-assistant",
            [("count", "id")],
            groupBy=["analysis.successEvaluation", "assistantId"],
        ),
        query(
            "tokens-by-assistant",
            [
                ("sum", f"costBreakdown.{c}")
                for c in (
                    "llmPromptTokens",
                    "llmCompletionTokens",
                    "llmCachedPromptTokens",
                    "ttsCharacters",
                )
            ],
            groupBy=["assistantId"],
        ),
        query("weekly-cost-by-type", [("sum", "cost")], groupBy=["type"], step="week"),
        query(
            "minutes-by-assistant",
            [("sum", "minutesUsed")],
            groupBy=["assistantId"],
            table="subscription",
        ),
        query(
            "cost-stats-by-assistant",
            [("avg", "cost"), ("min", "cost"), ("max", "cost")],
            groupBy=["assistantId"],
        ),
        query("daily-cost-history", [("history", "cost")], groupBy=["assistantId"]),
        query(
            "transcriber-and-summary-by-day",
            [
                ("sum", "costBreakdown.transcriber"),
                ("sum", "costBreakdown.analysisBreakdown.summary"),
            ],
            step="day",
        ),
        query(
            "cost-by-assistant-day-utc",
            [("sum", "cost")],
            groupBy=["assistantId"],
            step="day",
            timezone="UTC",
        ),
        query("ended-reason-by-day", [("count", "id")], groupBy=["endedReason"], step="day"),
        query("hourly-volume", [("count", "id"), ("sum", "duration")], step="hour"),
        query(
            "month-summary",
            [("sum", "cost"), ("count", "id"), ("sum", "minutesUsed")],
            step="month",
            table="subscription",
        ),
    ]


def peak_rss_bytes(pid: int) -> int:
    """Peak resident set size (VmHWM) of a live process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM not found (needs Linux /proc)")


def timed(run: Callable[[], object], warmup: int, count: int) -> list[float]:
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def alternating(
    first: Callable[[], object], second: Callable[[], object], options: argparse.Namespace
) -> tuple[list[float], list[float]]:
    """Time both sides in turn, so that both meet the same load on a shared machine."""
    for _ in range(options.warmup):
        first()
        second()
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(options.requests):
        for run, into in ((first, samples[0]), (second, samples[1])):
            started = time.perf_counter()
            run()
            into.append((time.perf_counter() - started) * 1000)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(float(np.percentile(samples, 95)), 2),
        "min_ms": round(min(samples), 2),
        "max_ms": round(max(samples), 2),
        "n": len(samples),
    }


def main() -> int:
    options = _options()
    load_before = os.getloadavg()
    path, generate_s, cached = calls_file(options)
    _say(f"calls: {path} ({'cached; ' if cached else ''}generated in {generate_s:.1f} s)")
    start, end = month_range(options.query_month)
    queries = batch(start, end)
    body = json.dumps({"queries": queries}).encode()

    engine = Engine([path])
    load_started = time.perf_counter()
    engine.load()
    in_process_load_s = time.perf_counter() - load_started
    compiled = [
        engine.compile(query)
        for query in resolve(AnalyticsQueryDTO.model_validate({"queries": queries}), 0)
    ]
    statements = [(item.sql, item.parameters) for item in compiled if item is not None]
    connection = engine.cursor()

    def direct() -> list[int]:
        return [
            len(connection.execute(sql, parameters).fetchall()) for sql, parameters in statements
        ]

    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="bench-emulator-") as scratch,
        localrun.emulator_process(
            [path],
            API_KEY,
            log=Path(scratch) / "emulator.log",
            extra_args=["--log-level", "warning"],
            start_timeout=SERVER_START_TIMEOUT_S,
        ) as server,
    ):
        url, server_start_s = server.url, time.perf_counter() - started
        _say(f"server: {url} ready in {server_start_s:.1f} s (pid {server.pid})")
        with httpx.Client(
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
            timeout=120,
        ) as client:

            def over_http(payload: bytes = body) -> bytes:
                response = client.post(f"{url}/analytics", content=payload)
                response.raise_for_status()
                return response.content

            http_rows = [len(result["result"]) for result in json.loads(over_http())]
            if direct() != http_rows:
                raise SystemExit(f"row counts differ: http {http_rows} vs direct {direct()}")
            http_samples, direct_samples = alternating(over_http, direct, options)
            response_bytes = len(over_http())
            full_body = json.dumps({"queries": batch(*month_range_all(options))}).encode()
            full_samples = (
                timed(lambda: over_http(full_body), 1, options.full_range_requests)
                if options.full_range_requests
                else []
            )
        rss = peak_rss_bytes(server.pid)

    http, floor = summary(http_samples), summary(direct_samples)
    ratio = round(http["p50_ms"] / floor["p50_ms"], 2)
    met = {
        "p50": http["p50_ms"] <= TARGETS["p50_ms"],
        "ratio": ratio <= TARGETS["ratio"],
        "rss": rss / 2**30 <= TARGETS["rss_gib"],
        "generate": generate_s <= TARGETS["generate_s"],
    }
    results = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
            "load_average_before": [round(value, 2) for value in load_before],
            "load_average_after": [round(value, 2) for value in os.getloadavg()],
        },
        "data": {
            "calls": options.calls,
            "months": options.months,
            "first_month": options.first_month,
            "file_mb": round(path.stat().st_size / 1e6, 1),
            "generate_s": round(generate_s, 1),
            "generate_cached": cached,
        },
        "batch": {
            "queries": len(queries),
            "month": options.query_month,
            "timezone": ZONE,
            "rows": sum(http_rows),
            "response_bytes": response_bytes,
        },
        "http": http,
        "direct_duckdb": floor,
        "ratio_p50": ratio,
        "full_range_http": summary(full_samples) if full_samples else None,
        "server": {"start_s": round(server_start_s, 1), "peak_rss_mib": round(rss / 2**20, 1)},
        "in_process_load_s": round(in_process_load_s, 1),
        "targets": TARGETS,
        "met": met,
    }
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"vapi-emulator bench: {options.calls:,} calls over {options.months} months; batch of "
        f"{len(queries)} queries on {options.query_month} ({ZONE}), {sum(http_rows):,} rows, "
        f"{response_bytes / 1e3:.0f} kB",
        f"  HTTP          p50 {http['p50_ms']:.1f} ms  p95 {http['p95_ms']:.1f} ms  (n={http['n']})",
        f"  direct DuckDB p50 {floor['p50_ms']:.1f} ms  p95 {floor['p95_ms']:.1f} ms  (n={floor['n']})",
        f"  ratio (p50)   {ratio:.2f}x   target <= {TARGETS['ratio']}x",
    ]
    if full_samples:
        whole = summary(full_samples)
        lines.append(
            f"  all {options.months} months over HTTP: p50 {whole['p50_ms']:.0f} ms (n={whole['n']})"
        )
    lines += [
        f"  server peak RSS {rss / 2**20:.0f} MiB, ready in {server_start_s:.1f} s; "
        f"generation {generate_s:.1f} s{' (cached)' if cached else ''}",
        f"  machine load average (1 min) before/after: {load_before[0]:.2f}/{os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} CPUs",
        f"  results: {options.out}",
    ]
    print("\n".join(lines))
    missed = [name for name, ok in met.items() if not ok]
    if missed:
        print(f"  targets missed: {', '.join(missed)}")
    return 1 if missed and options.check else 0


def month_range_all(options: argparse.Namespace) -> tuple[str, str]:
    """All generated months, in Europe/Berlin."""
    first = month_range(options.first_month)[0]
    year, number = (int(part) for part in options.first_month.split("-"))
    last_index = year * 12 + number - 1 + options.months - 1
    last = f"{last_index // 12:04d}-{last_index % 12 + 1:02d}"
    return first, month_range(last)[1]


if __name__ == "__main__":
    sys.exit(main())
