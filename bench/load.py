"""Load test of vapi-emulator: many concurrent clients on 1.5M calls, loopback only.

Starts ``vapi-emulator serve`` on 127.0.0.1 over the benchmark calls (reused from
``data/bench/``, generated with ``vapi-emulator generate`` when absent), then lets
``--clients`` threads, each with its own ``VapiAnalyticsClient`` (own connection, no
retries, so every failure counts), send ``--requests`` requests each, all released
at once. The requests are the analytics questions a month-end puts to the API — the
org total, cost by assistant, by assistant and day, by cost-center variable, assistant
and day, calls by ended reason — over the twelve generated months, in a fixed order.

An error is any failed request, and any answer whose bytes differ from the answer to
the same question asked alone before the load started (so "fast but wrong under
concurrency" fails too). The run is bounded: at most clients × requests requests, and
``--deadline`` seconds after which the remaining requests are not sent (counted as
errors). Prints p50/p95/p99 latency and throughput, writes everything to
``bench/results/load.json`` and exits 1 unless there were 0 errors.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from vapi_chargeback import localrun
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.models import (
    AnalyticsOperation,
    AnalyticsQuery,
    TimeRange,
    VariableValueGroupBy,
)
from vapi_chargeback.period import StatementPeriod

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "data" / "bench"
RESULTS = ROOT / "bench" / "results" / "load.json"
ZONE = "Europe/Berlin"
SEED = 7


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--requests", type=int, default=20, help="requests per client (default 20)")
    parser.add_argument(
        "--calls", type=int, default=1_500_000, help="calls in the data (default 1,500,000)"
    )
    parser.add_argument("--months", type=int, default=12, help="months of calls (default 12)")
    parser.add_argument(
        "--first-month", default="2026-01", help="first generated month (default 2026-01)"
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="calls file to serve (default: the cached benchmark file in data/bench/, "
        "generated if absent)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=600.0,
        help="seconds the load phase may take; requests not sent by then are errors (default 600)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="read timeout per request (default 60 s)"
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="JSON results (default bench/results/load.json)"
    )
    options = parser.parse_args()
    if options.clients < 1 or options.requests < 1 or options.clients * options.requests > 10_000:
        parser.error("--clients and --requests must be >= 1, and their product at most 10,000")
    if options.calls % options.months:
        parser.error("--calls must divide evenly by --months (calls are generated per month)")
    return options


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def calls_file(options: argparse.Namespace) -> tuple[Path, bool]:
    """The calls to serve, and whether they were already there."""
    per_month = options.calls // options.months
    path = options.data or (
        CACHE / f"calls-{options.first_month}-{options.months}m-{per_month}-seed{SEED}.parquet"
    )
    if path.exists():
        return path, True
    path.parent.mkdir(parents=True, exist_ok=True)
    _say(f"generating {options.calls:,} calls into {path} …")
    subprocess.run(
        [
            str(localrun.BIN / "vapi-emulator"),
            "generate",
            "--month",
            options.first_month,
            "--months",
            str(options.months),
            "--calls",
            str(per_month),
            "--seed",
            str(SEED),
            "--out",
            str(path),
        ],
        check=True,
    )
    return path, False


def month_labels(first: str, count: int) -> list[str]:
    year, month = (int(part) for part in first.split("-"))
    labels = []
    for offset in range(count):
        number = month - 1 + offset
        labels.append(f"{year + number // 12}-{number % 12 + 1:02d}")
    return labels


def questions(month: str) -> list[AnalyticsQuery]:
    """The month-end questions about ``month``, one query each."""
    period = StatementPeriod.for_month(month, ZONE)

    def query(
        name: str, operations: list[tuple[str, str]], step: str | None = None, **extra: Any
    ) -> AnalyticsQuery:
        return AnalyticsQuery(
            table="call",
            name=name,
            time_range=TimeRange(start=period.start, end=period.end, timezone=ZONE, step=step),
            operations=[
                AnalyticsOperation(operation=operation, column=column, alias=f"{operation}_{index}")
                for index, (operation, column) in enumerate(operations)
            ],
            **extra,
        )

    cost_and_calls = [("sum", "cost"), ("count", "id")]
    return [
        query("org-total", [*cost_and_calls, ("sum", "duration")]),
        query("cost-by-assistant", cost_and_calls, group_by=["assistantId"]),
        query("cost-by-assistant-day", cost_and_calls, step="day", group_by=["assistantId"]),
        query(
            "cost-center-by-assistant-day",
            [*cost_and_calls, ("sum", "costBreakdown.llm")],
            step="day",
            group_by=["assistantId"],
            group_by_variable_value=[VariableValueGroupBy(key="costCenter")],
        ),
        query(
            "calls-by-ended-reason",
            [("count", "id"), ("sum", "duration")],
            group_by=["endedReason"],
        ),
    ]


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    bytes_received: int = 0


def schedule(clients: int, requests: int, months: list[str]) -> list[list[tuple[str, int]]]:
    """Per client, the (month, question index) of each request: every combination, spread."""
    count = len(questions(months[0]))
    return [
        [
            (months[(client * 7 + number) % len(months)], (client + number) % count)
            for number in range(requests)
        ]
        for client in range(clients)
    ]


def main() -> int:
    options = _options()
    path, cached = calls_file(options)
    months = month_labels(options.first_month, options.months)
    plans = schedule(options.clients, options.requests, months)
    asked = {(month, index) for plan in plans for month, index in plan}
    api_key = secrets.token_urlsafe(16)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="vapi-load-") as scratch:
        started = time.perf_counter()
        with localrun.serve_emulator([path], api_key, log=Path(scratch) / "emulator.log") as url:
            host = httpx.URL(url).host
            if not ipaddress.ip_address(host).is_loopback:
                raise SystemExit(f"refusing to load-test {url}: not a loopback address")
            startup_s = time.perf_counter() - started
            _say(f"emulator up on {url} in {startup_s:.1f} s over {path.name}")
            reference = references(url, api_key, asked, options.timeout)
            result = load(url, api_key, plans, reference, options)
            stats = httpx.get(f"{url}/_stats", timeout=10).json()
    report = summarise(options, path, cached, startup_s, result, stats, load_before)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(report, indent=2) + "\n")
    latency = report["latency_ms"]
    print(
        f"{report['requests']['sent']} requests from {options.clients} clients in "
        f"{report['wall_s']} s ({report['throughput_rps']} req/s): errors {report['errors']['count']}, "
        f"p50 {latency['p50']} ms, p95 {latency['p95']} ms, p99 {latency['p99']} ms, "
        f"max {latency['max']} ms -> {options.out}"
    )
    for error in report["errors"]["first"]:
        print(f"  error: {error}")
    return 0 if report["errors"]["count"] == 0 else 1


def references(
    url: str, api_key: str, asked: set[tuple[str, int]], timeout: float
) -> dict[tuple[str, int], str]:
    """sha256 of each question's answer, asked alone, before any load."""
    digests = {}
    with VapiAnalyticsClient(url, api_key, max_retries=0, read_timeout=timeout) as client:
        for month, index in sorted(asked):
            response = client.post_batch([questions(month)[index]])
            digests[(month, index)] = response.sha256
    return digests


def load(
    url: str,
    api_key: str,
    plans: list[list[tuple[str, int]]],
    reference: dict[tuple[str, int], str],
    options: argparse.Namespace,
) -> dict[str, Any]:
    outcomes = [Outcome() for _ in plans]
    barrier = threading.Barrier(len(plans) + 1)
    deadline: list[float] = []

    def client_thread(number: int) -> None:
        outcome = outcomes[number]
        with VapiAnalyticsClient(
            url, api_key, max_retries=0, max_concurrency=1, read_timeout=options.timeout
        ) as client:
            barrier.wait()
            for month, index in plans[number]:
                if time.monotonic() > deadline[0]:
                    outcome.errors.append(f"client {number}: not sent, deadline passed")
                    continue
                began = time.perf_counter()
                try:
                    response = client.post_batch([questions(month)[index]])
                except Exception as error:  # every failure is a result here, not a crash
                    outcome.errors.append(
                        f"client {number} {month} q{index}: {type(error).__name__}: {error}"
                    )
                    continue
                outcome.latencies.append(time.perf_counter() - began)
                outcome.bytes_received += len(response.raw)
                if response.sha256 != reference[(month, index)]:
                    outcome.errors.append(
                        f"client {number} {month} q{index}: answer differs from the reference"
                    )

    threads = [
        threading.Thread(target=client_thread, args=(n,), daemon=True) for n in range(len(plans))
    ]
    for thread in threads:
        thread.start()
    deadline.append(time.monotonic() + options.deadline)
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(timeout=options.deadline + options.timeout + 30)
    wall = time.perf_counter() - began
    hung = sum(thread.is_alive() for thread in threads)
    errors = [error for outcome in outcomes for error in outcome.errors]
    errors += [f"{hung} client thread(s) still running after the deadline"] if hung else []
    return {
        "latencies": [value for outcome in outcomes for value in outcome.latencies],
        "errors": errors,
        "bytes": sum(outcome.bytes_received for outcome in outcomes),
        "wall_s": wall,
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def summarise(
    options: argparse.Namespace,
    path: Path,
    cached: bool,
    startup_s: float,
    result: dict[str, Any],
    stats: dict[str, Any],
    load_before: tuple[float, float, float],
) -> dict[str, Any]:
    latencies = result["latencies"]
    milliseconds = [value * 1000 for value in latencies] or [0.0]
    wall = result["wall_s"]
    return {
        "measured_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": [round(value, 2) for value in load_before],
            "load_average_after": [round(value, 2) for value in os.getloadavg()],
        },
        "data": {
            "file": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
            "calls": options.calls,
            "months": options.months,
            "mb": round(path.stat().st_size / 1e6, 1),
            "cached": cached,
            "server_startup_s": round(startup_s, 1),
        },
        "clients": options.clients,
        "requests_per_client": options.requests,
        "requests": {"planned": options.clients * options.requests, "sent": len(latencies)},
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(latencies) / wall, 1) if wall else 0.0,
        "mb_received": round(result["bytes"] / 1e6, 1),
        "latency_ms": {
            "p50": round(statistics.median(milliseconds), 1),
            "p95": round(percentile(milliseconds, 0.95), 1),
            "p99": round(percentile(milliseconds, 0.99), 1),
            "max": round(max(milliseconds), 1),
            "mean": round(statistics.fmean(milliseconds), 1),
        },
        "errors": {"count": len(result["errors"]), "first": result["errors"][:10]},
        "server_stats": stats,
        "limits": {"deadline_s": options.deadline, "read_timeout_s": options.timeout},
    }


if __name__ == "__main__":
    sys.exit(main())
