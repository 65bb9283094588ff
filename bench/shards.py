"""Sharded allocate benchmark (issue 16): memory and time of each task, each in a fresh process.

The month of the pipeline benchmark's org (``bench/pipeline.py``: its config, mapping and
cached calls) is planned and fetched once against the emulator; then allocate runs as the
DAG runs it, every task in a process of its own as a Celery worker runs it:

- ``allocate`` unsharded (one shard: the single allocate task);
- for each shard count N: ``allocate_shard[s]`` for every shard (each summing the stored
  batches dealt to it), then ``allocate`` (the merge).

Each task reports its wall time and peak RSS (``VmHWM``); the merged statement's sha256
must equal the unsharded one (same run, same provenance), or the script exits 1.

    python bench/shards.py --assistants 300 --calls 60000 --shards 4 16
    python bench/shards.py --assistants 20000 --calls 5000000 --cost-centers 400 --shards 4 8

Progress goes to stderr, the table to stdout, the figures to ``bench/results/shards.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "shards.json"
MIB = 1 << 20

_CHILD = r"""
import json, sys, time
began = time.perf_counter()
from vapi_chargeback import pipeline, sharded
spec = json.loads(sys.stdin.read())
run = pipeline.RunInfo.model_validate(spec["run"]) if spec["run"] else None
task = spec["task"]
imported = time.perf_counter()
if task == "plan+fetch":
    from vapi_chargeback.analytics.client import VapiAnalyticsClient
    settings = pipeline.RunSettings(**spec["settings"])
    run = pipeline.plan_run(settings)
    with VapiAnalyticsClient(spec["base_url"], spec["key"], **spec["client"]) as client:
        out = {"run": run.model_dump(mode="json"), "fetched": [
            pipeline.fetch_batch(run, b, client).model_dump(mode="json")
            for b in range(run.batch_count)]}
elif task == "allocate":
    out = pipeline.allocate_run(run, spec["fetched"])
elif task == "allocate_shard":
    out = sharded.allocate_shard_run(run, spec["fetched"], spec["shard"], spec["shards"])
elif task == "merge":
    out = sharded.merge_run(run, spec["fetched"], spec["parts"])
else:
    raise SystemExit(f"unknown task {task}")
status = open("/proc/self/status").read().split("\n")
hwm = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmHWM:"))
print(json.dumps({"out": out, "seconds": time.perf_counter() - imported,
                  "import_seconds": imported - began, "peak_rss": hwm}))
"""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _bench_pipeline() -> ModuleType:
    path = ROOT / "bench" / "pipeline.py"
    spec = importlib.util.spec_from_file_location("bench_pipeline", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def task(spec: dict[str, Any]) -> dict[str, Any]:
    """One task in a fresh process: its result, seconds and peak RSS."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{spec['task']} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--month", default="2026-10")
    parser.add_argument("--assistants", type=int, default=300)
    parser.add_argument("--calls", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cost-centers", type=int, default=40)
    parser.add_argument("--definitions", type=int, default=3)
    parser.add_argument("--shards", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / "bench")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--max-response-mb", type=int, help="raise the client's max_response_bytes (MiB)"
    )
    args = parser.parse_args(argv)
    bench = _bench_pipeline()
    figures: dict[str, Any] = {"org": vars(args) | {"data_dir": str(args.data_dir)}}
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as scratch:
        folder = Path(scratch)
        options = argparse.Namespace(**vars(args))
        config, _ = bench.write_org(folder, options)
        calls = bench.calls_file(options)
        output = (folder / "output").as_uri()
        with bench.emulator(calls, folder / "emulator.log", None) as api:
            client = (
                {"max_response_bytes": args.max_response_mb * MIB} if args.max_response_mb else {}
            )
            settings = {
                "config_path": str(config),
                "output_url": output,
                "default_output_url": output,
                "month": args.month,
                "run_id": "bench-shards",
            }
            say("plan + fetch …")
            fetched_run = task(
                {
                    "task": "plan+fetch",
                    "run": None,
                    "settings": settings,
                    "base_url": api.url,
                    "key": bench.API_KEY,
                    "client": client,
                }
            )
        run, fetched = fetched_run["out"]["run"], fetched_run["out"]["fetched"]
        raw_bytes = sum(item["size"] for item in fetched)
        figures["batches"] = run["batch_count"]
        figures["raw_bytes"] = raw_bytes
        say(f"{run['batch_count']} batches, {raw_bytes / MIB:.1f} MiB of responses")
        base = {"run": run, "fetched": fetched}
        say("allocate, one shard …")
        single = task({**base, "task": "allocate"})
        figures["unsharded"] = {"seconds": single["seconds"], "peak_rss": single["peak_rss"]}
        expected = single["out"]["sha256"]
        rows = [("1", "allocate", f"{single['seconds']:.2f}", f"{single['peak_rss'] / MIB:.0f}")]
        ok = True
        for shards in args.shards:
            say(f"{shards} shards …")
            parts = [
                task({**base, "task": "allocate_shard", "shard": s, "shards": shards})
                for s in range(shards)
            ]
            merge = task({**base, "task": "merge", "parts": [p["out"] for p in parts]})
            same = merge["out"]["sha256"] == expected
            ok &= same
            figures[f"shards_{shards}"] = {
                "allocate_shard": [
                    {"seconds": p["seconds"], "peak_rss": p["peak_rss"]} for p in parts
                ],
                "merge": {"seconds": merge["seconds"], "peak_rss": merge["peak_rss"]},
                "statement_identical": same,
            }
            for name, items in (("allocate_shard", parts), ("merge", [merge])):
                rows.append(
                    (
                        str(shards),
                        f"{name} ×{len(items)}" if len(items) > 1 else name,
                        f"Σ {sum(i['seconds'] for i in items):.2f}, max {max(i['seconds'] for i in items):.2f}",
                        f"max {max(i['peak_rss'] for i in items) / MIB:.0f}",
                    )
                )
            rows.append((str(shards), "statement sha256 = unsharded", "", "yes" if same else "NO"))
    figures["import_rss_note"] = "each task is a fresh Python process; peak RSS includes imports"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=1, default=str) + "\n")
    header = ("shards", "task", "seconds", "peak RSS MiB")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
