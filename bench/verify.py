"""The ``verify`` step over a month of calls through ``GET /call`` on loopback: requests,
wall time, peak RSS.

Starts ``vapi-emulator serve`` as its own process over one generated month (``--calls``
calls, 1.5M by default; reused from ``data/bench/``, generated with ``vapi-emulator
generate`` when absent), then runs the demo org's month — October 2026 in Europe/Berlin —
through the pipeline's steps as the DAG runs them (``runner.run_month``: plan, fetch,
allocate, reconcile, then ``verify``, publish left out): the recount lists the month page
by page (``analytics.calls.list_call_pages``: time windows shrunk when a page comes back
full, every call once, a sha256 per page), folds each page into day sums as it arrives,
allocates them with the run's rules and compares them with the analytics-based statement
line by line and day by day. A recount that does not match to the cent fails the run
(``VerificationError``), so a fast but wrong listing cannot pass.

Prints the figures and writes them to ``bench/results/verify.json``: pages read, HTTP
requests, calls, bytes, the verify step's wall time, the client's peak RSS after each step
(budget 1 GiB) and CPU time, the emulator's CPU time and peak RSS. Exits 1 when the
verification does not pass or the client's peak RSS is over budget.
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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from vapi_chargeback import localrun
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.pipeline import RunSettings
from vapi_chargeback.runner import run_month
from vapi_chargeback.verify.step import RECOUNT_FILE, REPORT_FILE, VerificationError

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "data" / "bench"
RESULTS = ROOT / "bench" / "results" / "verify.json"
CONFIG = ROOT / "include" / "config" / "chargeback.yaml"
"""The demo org's config: its mapping names the generator's assistants."""
SEED = 7
MONTH = "2026-10"
START = datetime(2026, 9, 30, 22, tzinfo=UTC)
END = datetime(2026, 10, 31, 23, tzinfo=UTC)
"""October 2026 in Europe/Berlin (the generator's zone), as UTC instants."""
RSS_BUDGET_BYTES = 1 << 30


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


def verify_month(url: str, api_key: str, output: Path) -> dict[str, Any]:
    """The demo month through plan … reconcile, then ``verify``; its figures (also when the
    verification refuses the month: the report says where it differs)."""
    peaks: dict[str, float] = {}
    walls: dict[str, float] = {}

    @contextmanager
    def measured(step: str) -> Iterator[None]:
        _say(f"  {step} …")
        began = time.perf_counter()
        try:
            yield
        finally:
            walls[step] = round(time.perf_counter() - began, 1)
            peaks[step] = round(peak_rss_bytes() / 2**20, 1)

    run_id = "bench-verify"
    settings = RunSettings(
        config_path=str(CONFIG),
        output_url=output.as_uri(),
        default_output_url=output.as_uri(),
        month=MONTH,
        run_id=run_id,
    )
    cpu_before = time.process_time()
    refused = None
    with VapiAnalyticsClient(url, api_key) as client:
        try:
            run_month(settings, client, publish=False, verify=True, around_step=measured)
        except VerificationError as error:
            refused = str(error)
    work = output / "_runs" / MONTH / run_id
    report = json.loads((work / REPORT_FILE).read_text())
    wall = walls["verify"]
    return {
        "pages": report["pages"],
        "http_requests": report["requests"],
        "calls": report["calls"],
        "body_mb": round(report["bytes"] / 1e6, 1),
        "verify_wall_s": wall,
        "calls_per_s": round(report["calls"] / wall) if wall else None,
        "step_wall_s": walls,
        "client_cpu_s": round(time.process_time() - cpu_before, 1),
        "client_peak_rss_mib_after_step": peaks,
        "lines": report["lines"],
        "days": report["days"],
        "passed": report["passed"],
        "refused": refused,
        "recount_csv_kb": round((work / RECOUNT_FILE).stat().st_size / 1e3, 1),
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
            _say(f"emulator up on {emu.url} in {startup_s} s over {path.name}; verifying {MONTH} …")
            emulator_before = process_figures(emu.pid)
            result = verify_month(emu.url, api_key, Path(scratch) / "output")
            emulator_after = process_figures(emu.pid)
    peak = peak_rss_bytes()
    report = {
        "benchmark": "verify: one month recounted through GET /call and compared",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "data": {"file": path.name, "calls_in_file": options.calls, "reused": cached},
        "month": {"start": START.isoformat(), "end": END.isoformat()},
        "limit": 1000,
        "emulator_startup_s": startup_s,
        **result,
        "client_peak_rss_mib": round(peak / 2**20, 1),
        "client_rss_budget_mib": RSS_BUDGET_BYTES // 2**20,
        "emulator": {
            "cpu_s_run": round(emulator_after["cpu_s"] - emulator_before["cpu_s"], 1),
            "peak_rss_mib": emulator_after["peak_rss_mib"],
        },
    }
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"verified {report['calls']:,} calls of {MONTH} in {report['verify_wall_s']} s "
        f"({report['calls_per_s']:,} calls/s): {report['http_requests']:,} requests, "
        f"{report['pages']:,} pages, {report['body_mb']} MB; lines matched "
        f"{report['lines']['matched']}/{report['lines']['compared']}, assistant-days "
        f"{report['days']['matched']}/{report['days']['compared']}; client peak RSS "
        f"{report['client_peak_rss_mib']} MiB, CPU {report['client_cpu_s']} s; emulator CPU "
        f"{report['emulator']['cpu_s_run']} s -> {options.out}"
    )
    return 0 if report["passed"] and peak <= RSS_BUDGET_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
