"""Benchmark of the emulator's call store: in memory against on disk, same calls, same queries.

For each store (``vapi-emulator serve --store memory|disk``) this starts the server as its
own process on a cached calls file (``bench/pipeline.py`` generates them under
``data/bench/``), and measures:

- the start: seconds until ``/health`` answers, and the RSS once loaded; for ``disk`` both
  the first start (building the cache file) and a second one (reusing it; ``--reuse``
  measures only the second, e.g. to compare ``--memory-limit``/``--threads``);
- each query of ``bench/emulator.py``'s 20-query month batch as a request of its own,
  ``--repeat`` times (median ms); a query over the row cap answers 400, measured too;
- the server's peak RSS (``VmHWM``) after all of it;
- that every answer is byte for byte the same on both stores (exit 1 otherwise).

Writes ``bench/results/emulator-store-<calls>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from vapi_chargeback import localrun

sys.path.insert(0, str(Path(__file__).resolve().parent))
from emulator import batch, month_range

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "bench-key"
START_TIMEOUT_S = 900.0


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("calls", type=Path, help="a calls file (Parquet or JSON Lines)")
    parser.add_argument("--month", default="2026-10", help="month the batch asks about")
    parser.add_argument("--repeat", type=int, default=3, help="requests per query (median)")
    parser.add_argument(
        "--stores", default="memory,disk", help="comma-separated stores to measure, in order"
    )
    parser.add_argument("--memory-limit", help="passed to serve --memory-limit")
    parser.add_argument("--threads", help="passed to serve --threads")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure 'disk' on the existing cache only (skip building it first)",
    )
    parser.add_argument("--out", type=Path, help="results file")
    return parser.parse_args()


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def _serve(
    calls: Path,
    store: str,
    options: argparse.Namespace,
    scratch: Path,
    queries: list[dict[str, Any]],
) -> dict[str, Any]:
    extra = ["--log-level", "warning", "--store", store]
    if options.memory_limit:
        extra += ["--memory-limit", options.memory_limit]
    if options.threads:
        extra += ["--threads", options.threads]
    started = time.perf_counter()
    with localrun.emulator_process(
        [calls],
        API_KEY,
        log=scratch / f"{store}.log",
        extra_args=extra,
        start_timeout=START_TIMEOUT_S,
    ) as server:
        ready_s = time.perf_counter() - started
        loaded_rss = _status(server.pid, "VmRSS")
        _say(f"{store}: ready in {ready_s:.1f} s, RSS {loaded_rss / 2**20:.0f} MiB")
        timings: dict[str, float] = {}
        bodies: dict[str, str] = {}
        statuses: dict[str, int] = {}
        with httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"}, timeout=600) as client:
            for query in queries:
                samples = []
                for _ in range(max(1, options.repeat)):
                    begun = time.perf_counter()
                    response = client.post(f"{server.url}/analytics", json={"queries": [query]})
                    samples.append((time.perf_counter() - begun) * 1000)
                timings[query["name"]] = round(statistics.median(samples), 1)
                bodies[query["name"]] = response.text
                statuses[query["name"]] = response.status_code
                _say(f"  {query['name']}: {response.status_code} {timings[query['name']]:.0f} ms")
        peak = _status(server.pid, "VmHWM")
    log = (scratch / f"{store}.log").read_text(errors="replace")
    return {
        "ready_s": round(ready_s, 1),
        "loaded_rss_mib": round(loaded_rss / 2**20),
        "peak_rss_mib": round(peak / 2**20),
        "query_ms": timings,
        "status": statuses,
        "bodies": bodies,
        "log": [line for line in log.splitlines() if "loaded" in line],
    }


def main() -> int:
    options = _options()
    calls = options.calls.resolve()
    start, end = month_range(options.month)
    queries = batch(start, end)
    results: dict[str, Any] = {"calls_file": str(calls), "load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as folder:
        scratch = Path(folder)
        for store in options.stores.split(","):
            if store == "disk" and not options.reuse:
                calls.with_name(calls.name + ".store.duckdb").unlink(missing_ok=True)
                results["disk-first"] = _serve(calls, "disk", options, scratch, queries)
            results[store] = _serve(calls, store, options, scratch, queries)
    measured = [key for key in results if key in ("memory", "disk", "disk-first")]
    reference = results[measured[0]]["bodies"]
    identical = all(results[key]["bodies"] == reference for key in measured)
    for key in measured:
        results[key].pop("bodies")
    results["identical"] = identical
    results["load_average_after"] = os.getloadavg()
    out = options.out or ROOT / "bench" / "results" / f"emulator-store-{calls.stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    for key in measured:
        row = results[key]
        _say(
            f"{key:10s} ready {row['ready_s']:6.1f} s  loaded {row['loaded_rss_mib']:5d} MiB  "
            f"peak {row['peak_rss_mib']:5d} MiB  batch Σ {sum(row['query_ms'].values()):7.0f} ms"
        )
    _say(f"identical answers: {identical}; results: {out}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
