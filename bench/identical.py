"""Byte-identity proof: the statements of fixed inputs, rendered by a baseline revision and by
the working tree, must have the same sha256, file by file.

A refactoring that claims to change no behaviour runs this against the commit before it:

    python bench/identical.py --baseline def8818

The inputs are made once, by the working tree, and both sides read the same files and ask
the same emulator (one process per input set, on loopback):

- **demo**: the demo config and mapping (``include/config/``, copied) over the three months
  the e2e tests run (2026-08 to 2026-10, 6,000 calls a month);
- **large-org**: the pipeline benchmark's org (``bench/pipeline.py``: 40 cost centers × 3
  query definitions, a mapping with history and a mid-month change) at a small scale —
  300 assistants, so the plan is the windowed, mapping-aware one (checked), 60,000 calls.

The baseline is checked out with ``git worktree add`` into a temporary folder and runs in a
fresh process of the same venv with its own ``include/`` first on ``PYTHONPATH`` (the child
prints which package it imported, so a mix-up shows). Each side runs every month the way its
tree runs one outside Airflow: ``run_month`` where the tree has it (``runner``, earlier
``pipeline``), else the DAG's step functions in order. ``manifest.json`` is left out of the
comparison: it names the run.

Prints one row per statement file and exits 1 on any difference, missing file or failed run.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from vapi_chargeback import localrun

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "include" / "config" / "chargeback.yaml"
DEMO_MONTHS = ("2026-08", "2026-09", "2026-10")
DEMO_CALLS_PER_MONTH = 6_000
"""As ``tests/e2e/test_dag_e2e.py`` runs the demo org."""
LARGE_MONTH = "2026-10"
LARGE_ASSISTANTS = 300
"""Past ``pipeline.COARSE_PLAN_MIN_ASSISTANTS`` (200): the windowed plan."""
LARGE_CALLS = 60_000
SEED = 7
EXCLUDED = frozenset({"manifest.json"})

_DRIVER = r"""
import json, sys
from vapi_chargeback import pipeline
from vapi_chargeback.analytics.client import VapiAnalyticsClient

try:
    from vapi_chargeback.runner import run_month
except ImportError:
    run_month = getattr(pipeline, "run_month", None)

spec = json.loads(sys.argv[1])
print(json.dumps({"package": pipeline.__file__}), flush=True)
with VapiAnalyticsClient(spec["base_url"], spec["key"]) as client:
    for month in spec["months"]:
        settings = pipeline.RunSettings(
            config_path=spec["config"],
            output_url=spec["output"],
            default_output_url=spec["output"],
            month=month,
            run_id=f"identical-{month}",
        )
        if run_month is not None:
            run = run_month(settings, client).run
        else:
            run = pipeline.plan_run(settings)
            fetched = [
                pipeline.fetch_batch(run, index, client).model_dump(mode="json")
                for index in range(run.batch_count)
            ]
            reconciled = pipeline.reconcile_run(run, pipeline.allocate_run(run, fetched))
            pipeline.publish_run(run, reconciled)
        print(json.dumps({"month": month, "work": run.work_url}), flush=True)
"""


@dataclass(frozen=True)
class Inputs:
    """One set of fixed inputs: a config (with its mapping), calls, the months to render."""

    name: str
    config: Path
    calls: Path
    months: tuple[str, ...]


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _bench_pipeline() -> ModuleType:
    """``bench/pipeline.py``, for its org writer and cached calls (one definition of the org)."""
    path = ROOT / "bench" / "pipeline.py"
    spec = importlib.util.spec_from_file_location("bench_pipeline", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while defined
    spec.loader.exec_module(module)
    return module


def make_inputs(folder: Path, data_dir: Path) -> list[Inputs]:
    demo = folder / "demo"
    demo.mkdir(parents=True)
    shutil.copy(DEMO_CONFIG, demo / DEMO_CONFIG.name)
    shutil.copy(DEMO_CONFIG.parent / "assistant_teams.csv", demo / "assistant_teams.csv")
    shutil.copy(DEMO_CONFIG.parent / "fx_rates.csv", demo / "fx_rates.csv")
    say(f"inputs: demo calls, {len(DEMO_MONTHS)} months × {DEMO_CALLS_PER_MONTH:,}")
    demo_calls = localrun.generate_calls(
        demo / "calls.parquet",
        month=DEMO_MONTHS[0],
        months=len(DEMO_MONTHS),
        calls_per_month=DEMO_CALLS_PER_MONTH,
    )

    bench = _bench_pipeline()
    large = folder / "large-org"
    large.mkdir()
    options = argparse.Namespace(
        month=LARGE_MONTH,
        assistants=LARGE_ASSISTANTS,
        calls=LARGE_CALLS,
        seed=SEED,
        cost_centers=40,
        definitions=3,
        data_dir=data_dir,
    )
    config, _ = bench.write_org(large, options)
    # write_org names a folder beside it as the (overridden) output; a fixed URL keeps the
    # config's bytes, hence the workbooks' inputs fingerprint, the same from run to run.
    text = config.read_text(encoding="utf-8")
    config.write_text(
        re.sub(r"^output: .*$", "output: file:///unused-output", text, count=1, flags=re.M),
        encoding="utf-8",
    )
    return [
        Inputs("demo", demo / DEMO_CONFIG.name, demo_calls, DEMO_MONTHS),
        Inputs("large-org", config, bench.calls_file(options), (LARGE_MONTH,)),
    ]


@contextmanager
def baseline_tree(revision: str, folder: Path) -> Iterator[Path]:
    """The baseline revision checked out in ``folder`` (a detached worktree), removed after."""
    tree = folder / "baseline"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(tree), revision],
        check=True,
    )
    try:
        yield tree
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
        )


def render(tree: Path, inputs: Inputs, base_url: str, key: str, output: Path) -> dict[str, Any]:
    """Every month of ``inputs`` rendered by the code of ``tree``, in a fresh process."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("VAPI_")}
    env["PYTHONPATH"] = str(tree / "include")
    spec = {
        "config": str(inputs.config),
        "output": output.as_uri(),
        "months": list(inputs.months),
        "base_url": base_url,
        "key": key,
    }
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER, json.dumps(spec)],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{tree} failed on {inputs.name}:\n{done.stderr[-4000:]}")
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    package = Path(records[0]["package"]).resolve()
    if not package.is_relative_to(tree.resolve() / "include"):
        raise RuntimeError(f"{tree} imported vapi_chargeback from {package}, not its own include/")
    return {"package": str(package), "work": {r["month"]: r["work"] for r in records[1:]}}


def statement_hashes(folder: Path) -> dict[str, str]:
    """Relative path → sha256 of every statement file of a month folder."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name not in EXCLUDED
    }


def windowed_families(work_url: str) -> int:
    plan = json.loads(Path(work_url.removeprefix("file://"), "plan.json").read_bytes())
    return len(plan.get("families") or {})


def compare(
    inputs: Inputs, baseline: Path, current: Path
) -> tuple[list[tuple[str, str, str, str, str, str]], int]:
    rows: list[tuple[str, str, str, str, str, str]] = []
    differences = 0
    for month in inputs.months:
        before = statement_hashes(baseline / month)
        after = statement_hashes(current / month)
        if not before and not after:
            rows.append((inputs.name, month, "(no statement files)", "-", "-", "DIFFERENT"))
            differences += 1
        for name in sorted(before.keys() | after.keys()):
            old, new = before.get(name, "missing"), after.get(name, "missing")
            same = old == new
            differences += not same
            verdict = "same" if same else "DIFFERENT"
            rows.append((inputs.name, month, name, old[:12], new[:12], verdict))
    return rows, differences


def print_table(rows: Sequence[tuple[str, ...]]) -> None:
    header = ("inputs", "month", "file", "baseline sha256", "working tree", "")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    rule = "  ".join("-" * width for width in widths)
    print(rule)
    print("  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)))
    print(rule)
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(rule)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Render the statements of fixed inputs with a baseline revision and with "
        "the working tree, and compare the sha256 of every statement file (manifest.json "
        "excluded). Exit status 1 on any difference.",
    )
    parser.add_argument(
        "--baseline",
        required=True,
        metavar="REV",
        help="git revision to compare against, e.g. the commit before a refactoring",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=ROOT / "data" / "bench",
        help="cache of the large org's generated calls (gitignored; default data/bench)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the inputs and both sides' output in this folder instead of a temporary one",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    revision = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", f"{args.baseline}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if revision.returncode != 0:
        print(f"identical: {args.baseline!r} is not a commit of {ROOT}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-identical-") as temporary:
        scratch = args.keep.resolve() if args.keep else Path(temporary)
        scratch.mkdir(parents=True, exist_ok=True)
        all_inputs = make_inputs(scratch / "inputs", args.data_dir)
        rows: list[tuple[str, str, str, str, str, str]] = []
        differences = 0
        notes: list[str] = []
        with baseline_tree(args.baseline, Path(temporary)) as tree:
            for inputs in all_inputs:
                key = secrets.token_urlsafe(16)
                log = scratch / f"emulator-{inputs.name}.log"
                with localrun.serve_emulator([inputs.calls], key, log=log) as url:
                    sides = {}
                    for side, code in (("baseline", tree), ("working-tree", ROOT)):
                        say(f"{inputs.name}: rendering {', '.join(inputs.months)} with {side}")
                        output = scratch / "output" / side / inputs.name
                        try:
                            sides[side] = render(code, inputs, url, key, output)
                        except RuntimeError as error:
                            print(f"identical: {error}", file=sys.stderr)
                            return 1
                if inputs.name == "large-org":
                    work = sides["working-tree"]["work"][LARGE_MONTH]
                    families = windowed_families(work)
                    notes.append(f"large-org plan: {families} windowed families")
                    if not families:
                        notes.append("large-org plan is NOT windowed: the check misses it")
                        differences += 1
                found, different = compare(
                    inputs,
                    scratch / "output" / "baseline" / inputs.name,
                    scratch / "output" / "working-tree" / inputs.name,
                )
                rows += found
                differences += different
    print(
        f"baseline {revision.stdout.strip()} ({args.baseline}) vs the working tree of {ROOT}; "
        "manifest.json excluded (it names the run)"
    )
    print_table(rows)
    for note in notes:
        print(note)
    files = len(rows)
    print(
        f"{files} statement files compared in {time.perf_counter() - started:.0f} s: "
        + ("all identical" if not differences else f"{differences} DIFFERENT")
    )
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
