"""Listing a month of calls through ``GET /call`` on loopback: requests, wall time, peak RSS.

The first half of ``verify``'s benchmark (issue 14): starts ``vapi-emulator serve`` as its
own process over one generated month (``--calls`` calls, 1.5M by default; reused from
``data/bench/``, generated with ``vapi-emulator generate`` when absent), then lists the
statement month — October 2026 in Europe/Berlin — with this project's client
(``analytics.calls.list_call_pages``: time windows shrunk when a page comes back full,
every call once, a sha256 per page). The listing is checked against ``POST /analytics``
on the same emulator (count of calls and Σ cost of the month must match exactly), so a
fast but wrong listing fails.

Prints the figures and writes them to ``bench/results/verify.json``: pages read (kept
and split), HTTP requests, calls, bytes, wall time, the client's peak RSS (budget 1 GiB)
and CPU time, the emulator's CPU time and peak RSS. Exits 1 when the listing disagrees
with the analytics or the client's peak RSS is over budget.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from vapi_chargeback import localrun
from vapi_chargeback.analytics.calls import list_call_pages
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.models import AnalyticsOperation, AnalyticsQuery, TimeRange

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "data" / "bench"
RESULTS = ROOT / "bench" / "results" / "verify.json"
SEED = 7
MONTH = "2026-10"
START = datetime(2026, 9, 30, 22, tzinfo=UTC)
END = datetime(2026, 10, 31, 23, tzinfo=UTC)
"""October 2026 in Europe/Berlin (the generator's zone), as UTC instants."""
RSS_BUDGET_BYTES = 1 << 30
PROGRESS_EVERY_PAGES = 250


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--calls", type=int, default=1_500_000, help="calls in the month (default 1,500,000)"
    )
    parser.add_argument(
        "--data", type=Path, help="calls file to serve (default: generated into data/bench/)"
    )
    parser.add_argument(
        "--limit", type=int, default=1000, help="page size asked for (default 1000, the API's max)"
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="JSON results (default bench/results/verify.json)"
    )
    return parser.parse_args()


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def calls_file(options: argparse.Namespace) -> tuple[Path, bool]:
    """The calls to serve, and whether they were already there."""
    path = options.data or CACHE / f"verify-{MONTH}-{options.calls}-s{SEED}.parquet"
    if path.exists():
        return path, True
    path.parent.mkdir(parents=True, exist_ok=True)
    _say(f"generating {options.calls:,} calls into {path} …")
    subprocess.run(
        [
            str(localrun.BIN / "vapi-emulator"),
            "generate",
            "--month",
            MONTH,
            "--calls",
            str(options.calls),
            "--seed",
            str(SEED),
            "--out",
            str(path),
        ],
        check=True,
    )
    return path, False


def analytics_totals(client: VapiAnalyticsClient) -> tuple[int, Decimal]:
    """Calls and Σ cost of the month from ``POST /analytics``, the figures to match."""
    query = AnalyticsQuery(
        table="call",
        name="month",
        time_range=TimeRange(start=START, end=END),
        operations=[
            AnalyticsOperation(operation="count", column="id", alias="calls"),
            AnalyticsOperation(operation="sum", column="cost", alias="cost"),
        ],
    )
    row = client.query([query])["month"].result[0]
    return int(str(row["calls"])), Decimal(str(row["cost"]))


def process_figures(pid: int) -> dict[str, float]:
    """CPU seconds and peak RSS of another process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    peak_kib = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    return {
        "cpu_s": round((int(fields[11]) + int(fields[12])) / ticks, 1),
        "peak_rss_mib": round(peak_kib / 1024, 1),
    }


def list_month(url: str, api_key: str, limit: int) -> dict[str, Any]:
    pages = kept = full = requests = calls = size = 0
    cost = Decimal(0)
    started = time.perf_counter()
    cpu_before = time.process_time()
    with VapiAnalyticsClient(url, api_key) as client:
        for page in list_call_pages(client, START, END, limit=limit):
            pages += 1
            requests += page.attempts
            size += page.size
            kept += page.kept
            full += not page.kept
            calls += len(page.calls)
            cost += sum((call.cost or Decimal(0) for call in page.calls), Decimal(0))
            if pages % PROGRESS_EVERY_PAGES == 0:
                _say(
                    f"  {pages:,} pages, {calls:,} calls, {time.perf_counter() - started:.0f} s, "
                    f"peak RSS {peak_rss_bytes() / 2**20:.0f} MiB"
                )
        wall = time.perf_counter() - started
        expected_calls, expected_cost = analytics_totals(client)
    return {
        "pages": {"read": pages, "kept": kept, "split_full": full},
        "http_requests": requests,
        "calls": calls,
        "cost_usd": str(cost),
        "body_mb": round(size / 1e6, 1),
        "wall_s": round(wall, 1),
        "calls_per_s": round(calls / wall) if wall else None,
        "client_cpu_s": round(time.process_time() - cpu_before, 1),
        "analytics": {"calls": expected_calls, "cost_usd": str(expected_cost)},
        "matches_analytics": calls == expected_calls and cost == expected_cost,
    }


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> int:
    options = _options()
    path, cached = calls_file(options)
    api_key = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="vapi-verify-") as scratch:
        started = time.perf_counter()
        log = Path(scratch) / "emulator.log"
        with localrun.emulator_process([path], api_key, log=log, start_timeout=900) as emu:
            if httpx.URL(emu.url).host != localrun.LOOPBACK:
                raise SystemExit(f"refusing to benchmark {emu.url}: not loopback")
            startup_s = round(time.perf_counter() - started, 1)
            _say(f"emulator up on {emu.url} in {startup_s} s over {path.name}; listing {MONTH} …")
            emulator_before = process_figures(emu.pid)
            result = list_month(emu.url, api_key, options.limit)
            emulator_after = process_figures(emu.pid)
    peak = peak_rss_bytes()
    report = {
        "benchmark": "verify: GET /call listing of one month",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "data": {"file": path.name, "calls_in_file": options.calls, "reused": cached},
        "month": {"start": START.isoformat(), "end": END.isoformat()},
        "limit": options.limit,
        "emulator_startup_s": startup_s,
        **result,
        "client_peak_rss_mib": round(peak / 2**20, 1),
        "client_rss_budget_mib": RSS_BUDGET_BYTES // 2**20,
        "emulator": {
            "cpu_s_listing": round(emulator_after["cpu_s"] - emulator_before["cpu_s"], 1),
            "peak_rss_mib": emulator_after["peak_rss_mib"],
        },
    }
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"listed {report['calls']:,} calls of {MONTH} in {report['wall_s']} s "
        f"({report['calls_per_s']:,} calls/s): {report['http_requests']:,} requests, "
        f"{report['pages']['read']:,} pages ({report['pages']['split_full']} full, split), "
        f"{report['body_mb']} MB; client peak RSS {report['client_peak_rss_mib']} MiB, "
        f"CPU {report['client_cpu_s']} s; emulator CPU {report['emulator']['cpu_s_listing']} s; "
        f"matches analytics: {report['matches_analytics']} -> {options.out}"
    )
    return 0 if report["matches_analytics"] and peak <= RSS_BUDGET_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
