"""Allocation spread over shards of assistants publishes the same bytes as one allocation.

A mid-size org — the pipeline benchmark's (``bench/pipeline.py``): 40 cost centers × 3
query definitions, four shared pools (one re-spreading the calls without an assistant),
a mapping with history and a mid-month move, some assistants left unmapped — at 300
assistants, so the plan is the windowed one; plus a name rule that charges every unmapped
assistant, so rule lines (whose rounding runs over the lines they replace) are in play.
The month runs over real HTTP against the emulator through ``runner.run_month`` with 1,
4 and 16 shards: every statement file must be byte for byte the same, and the sharded
runs must really have been cut (each shard summing its own assistants, and only those).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from vapi_chargeback import pipeline, runner
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.decode import decode_json
from vapi_chargeback.shards import SHARDS_DIR, shard_of
from vapi_chargeback.statements import render
from vapi_emulator.assistants import sidecar_path
from vapi_emulator.server import run_emulator

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-sharded-allocation-test"
MONTH = "2026-10"
ASSISTANTS = 300
CALLS = 40_000
SHARD_COUNTS = (1, 4, 16)
RUN_ID = "sharded-test"
"""One run id for every shard count: the workbooks name the run, and must not differ."""

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]


def _bench_pipeline() -> ModuleType:
    """``bench/pipeline.py``, for its org writer and calls (one definition of the bench org)."""
    path = ROOT / "bench" / "pipeline.py"
    spec = importlib.util.spec_from_file_location("bench_pipeline_for_shards", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The org's config (with a catch-all name rule) and the emulator serving its month."""
    bench = _bench_pipeline()
    folder = tmp_path_factory.mktemp("org")
    options = argparse.Namespace(
        month=MONTH,
        assistants=ASSISTANTS,
        calls=CALLS,
        seed=11,
        cost_centers=40,
        definitions=3,
        data_dir=folder / "data",
    )
    config, facts = bench.write_org(folder, options)
    assert facts["unmapped"] > 0 and facts["mid_month_changes"] == 1
    first_center = bench.center_ids(options.cost_centers)[0]
    with config.open("a", encoding="utf-8") as text:
        text.write(
            f'mapping_rules:\n  - name: "."\n    cost_center: {first_center}\n    team: by-name\n'
        )
    calls = bench.calls_file(options)
    listing = sidecar_path(calls)
    if not listing.exists():
        # The bench generates into a ``.partial`` name and renames the calls only.
        shutil.copy(sidecar_path(calls.with_suffix(".partial.parquet")), listing)
    with run_emulator([calls], KEY) as url:
        yield config, url


def _run(
    config: Path, base_url: str, output: Path, shards: int, workers: int = 1
) -> runner.MonthRun:
    settings = pipeline.RunSettings(
        config_path=str(config),
        output_url=output.as_uri(),
        default_output_url=output.as_uri(),
        month=MONTH,
        run_id=RUN_ID,
    )
    with VapiAnalyticsClient(base_url, KEY) as client:
        return runner.run_month(settings, client, allocate_shards=shards, workers=workers)


def _files(folder: Path) -> dict[str, str]:
    """Every statement file of a month folder → its sha256 (the manifest names the run's
    time, so it is compared by its figures instead)."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "manifest.json"
    }


def _figures(folder: Path) -> dict[str, Any]:
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return {key: manifest[key] for key in ("totals", "reconciliation", "files")}


def test_one_four_and_sixteen_shards_publish_the_same_bytes(
    org: tuple[Path, str], tmp_path: Path
) -> None:
    config, base_url = org
    runs = {n: _run(config, base_url, tmp_path / f"shards-{n}", n) for n in SHARD_COUNTS}

    statements = {n: _files(tmp_path / f"shards-{n}" / MONTH) for n in SHARD_COUNTS}
    assert len(statements[1]) > 40, "a statement per cost center, the CSV, the workbook …"
    assert statements[4] == statements[1]
    assert statements[16] == statements[1]
    figures = {n: _figures(tmp_path / f"shards-{n}" / MONTH) for n in SHARD_COUNTS}
    assert figures[4] == figures[1] and figures[16] == figures[1]
    csv = (tmp_path / "shards-1" / MONTH / f"chargeback-{MONTH}.csv").read_text()
    allocations = Counter(row.split(",")[5] for row in csv.splitlines()[1:])
    assert allocations["direct"] > 200 and allocations["unallocated:no-assistant"] == 0, allocations
    assert ",by-name," in csv, "the name rule charges the unmapped assistants"

    assert "allocate_shard[0]" not in runs[1].step_seconds
    for n in (4, 16):
        steps = runs[n].step_seconds
        assert [s for s in steps if s.startswith("allocate_shard[")] == [
            f"allocate_shard[{i}]" for i in range(n)
        ]
        assert sum(s.startswith("partition[") for s in steps) == runs[n].run.batch_count


def test_mapped_tasks_in_worker_processes_publish_the_same_bytes(
    org: tuple[Path, str], tmp_path: Path
) -> None:
    """Two workers, each task in a fresh process (as Celery runs them), two at a time: the
    same statement files as one allocate task, and every task's own time and peak RSS."""
    config, base_url = org
    single = _run(config, base_url, tmp_path / "single", 1)
    spread = _run(config, base_url, tmp_path / "spread", 4, workers=2)

    assert _files(tmp_path / "spread" / MONTH) == _files(tmp_path / "single" / MONTH)
    assert _figures(tmp_path / "spread" / MONTH) == _figures(tmp_path / "single" / MONTH)
    assert single.task_peak_rss == {}
    mapped = [
        *(f"partition[{batch}]" for batch in range(spread.run.batch_count)),
        *(f"allocate_shard[{shard}]" for shard in range(4)),
    ]
    assert sorted(spread.task_peak_rss) == sorted(mapped)
    assert all(peak > 20 << 20 for peak in spread.task_peak_rss.values()), spread.task_peak_rss
    assert all(spread.step_seconds[name] > 0 for name in mapped)


def test_workbooks_written_by_forked_workers_are_the_bytes_of_one_process(
    org: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 cost centers: publish forks workbook workers (two, as on a 2-CPU worker with room
    in memory), and every file is the one a single process writes; with the process as
    large as the task's memory allows a second copy of, it writes them itself."""
    config, base_url = org
    started: list[int] = []

    class Recorded(render.ProcessPoolExecutor):
        def __init__(self, workers: int, **options: Any) -> None:
            started.append(workers)
            super().__init__(workers, **options)

    monkeypatch.setattr(render, "ProcessPoolExecutor", Recorded)
    monkeypatch.setattr(render, "_usable_cpus", lambda: 2)
    monkeypatch.setattr(render, "status_bytes", lambda field: 200 << 20)
    _run(config, base_url, tmp_path / "forked", 1)
    assert started == [2]
    monkeypatch.setattr(render, "status_bytes", lambda field: 400 << 20)
    _run(config, base_url, tmp_path / "alone", 1)
    assert started == [2], "at 400 MiB one worker would fit 1 GiB: no fork"

    assert _files(tmp_path / "forked" / MONTH) == _files(tmp_path / "alone" / MONTH)
    assert _figures(tmp_path / "forked" / MONTH) == _figures(tmp_path / "alone" / MONTH)


def test_each_shard_reads_only_its_own_assistants(org: tuple[Path, str], tmp_path: Path) -> None:
    config, base_url = org
    shards = 4
    month = _run(config, base_url, tmp_path / "cut", shards)
    folder = Path(month.run.work_url.removeprefix("file://")) / SHARDS_DIR / f"of-{shards:02d}"

    seen: dict[int, set[str]] = {shard: set() for shard in range(shards)}
    rows = 0
    for shard in range(shards):
        for path in sorted((folder / "raw").glob(f"batch-*-shard-{shard:03d}.json")):
            for result in decode_json(path.read_bytes()):
                for row in result["result"]:
                    rows += 1
                    assert shard_of(row.get("assistantId"), shards) == shard, (path, row)
                    if isinstance(row.get("assistantId"), str):
                        seen[shard].add(row["assistantId"])
    assert all(len(seen[shard]) > 20 for shard in range(shards)), {
        shard: len(ids) for shard, ids in seen.items()
    }
    assert not set.intersection(*seen.values())
    raw_rows = sum(
        len(result["result"])
        for path in (Path(month.run.work_url.removeprefix("file://")) / "raw").glob("batch-*.json")
        for result in decode_json(path.read_bytes())
    )
    assert rows == raw_rows, "the shards together hold every row, once"
    sums = [json.loads((folder / f"exact-{shard:03d}.json").read_bytes()) for shard in range(4)]
    assert all(document["pieces"] for document in sums)
