"""What ``bench/pipeline.py`` measures beside the run, and how it judges it all: rows
against the plan's estimates, DAG parse time, the workbook writers, the issue's targets
and the summary table."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DAG_FILE = ROOT / "dags" / "vapi_chargeback_monthly.py"
WRITER_BENCH = ROOT / "bench" / "writer.py"

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
    statement = statement_json.loads((work / RECONCILED_FILE).read_bytes(), work)
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


def mib_text(value: int | None) -> str:
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
            f"{_or_in_worker(requests['assistants_client'])} / {requests['assistants_server']}",
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
        tasks = name.endswith(" tasks")
        label = f"  {name} × {count} (time summed over tasks)" if tasks else f"  {name}"
        rows.append((label, f"{seconds:.2f} s", f"peak RSS {mib_text(peak)}", ""))
    rows += [
        (
            "pipeline wall time (plan → publish; mapped tasks"
            f" {pipeline.get('workers', 1)} at a time)",
            f"{pipeline['total_seconds']:.1f} s",
            f"≤ {results['wall_target_seconds']:.0f} s",
            verdict(results["targets"]["wall"]),
        ),
        (
            "pipeline peak RSS (the largest step's)",
            mib_text(pipeline["peak_rss_bytes"]),
            f"≤ {mib_text(TARGET_RSS_BYTES)} per step",
            verdict(results["targets"]["rss"]),
        ),
        (
            "emulator RSS loaded / peak (own process)",
            f"{mib_text(results['emulator']['loaded_rss_bytes'])} / "
            f"{mib_text(results['emulator']['peak_rss_bytes'])}",
            f"peak ≤ {mib_text(TARGET_EMULATOR_RSS_BYTES)}",
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
    """Steps by kind (``allocate_shard[3]`` is one of the ``allocate_shard`` tasks; the step
    ``fetch``, the wall time of every fetch, is apart from its tasks ``fetch[0]`` …): how
    many, their seconds, the largest peak RSS among them."""
    groups: dict[str, tuple[int, float, int | None]] = {}
    for name, seconds in pipeline["step_seconds"].items():
        kind = f"{name.split('[')[0]} tasks" if "[" in name else name
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


def _or_in_worker(count: int | None) -> str:
    """A client-side count, or why there is none: the names step ran in a worker process,
    whose client the bench cannot count (the emulator's log still does)."""
    return "— (in a worker)" if count is None else str(count)
