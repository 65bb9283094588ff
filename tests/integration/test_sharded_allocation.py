"""Allocation spread over shards of fetched batches publishes the same bytes as one allocation.

A mid-size org — the pipeline benchmark's (``bench/pipeline.py``): 40 cost centers × 3
query definitions, four shared pools (one re-spreading the calls without an assistant),
a mapping with history and a mid-month move, some assistants left unmapped — at 300
assistants, so the plan is the windowed one; plus a name rule that charges every unmapped
assistant, so rule lines (whose rounding runs over the lines they replace) are in play.
The month runs over real HTTP against the emulator through ``runner.run_month`` with 1,
4 and 16 shards, its plan cut in small windows sent one a request so that it has more
batches than 16 shards: every statement file must be byte for byte the same, and the sharded runs must
really have been cut (each shard summing exactly the batches dealt to it, every batch
summed once).
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
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from vapi_chargeback import breakdown_files, exact_sums, pipeline, runner, sharded
from vapi_chargeback.allocate import exact_sums as sum_exactly
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.names import run_rules
from vapi_chargeback.plan import RowBudget
from vapi_chargeback.shard_groups import MergedGroups, dumps_groups
from vapi_chargeback.shards import SHARDS_DIR, assign_batches, batch_weights
from vapi_chargeback.statements import render, render_workers
from vapi_chargeback.workfolder import FetchedBatch, StoredResults
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
ROWS_PER_QUERY = 10_000
QUERIES_PER_REQUEST = 1
"""Windows of about 10,000 rows, one a request: 21 batches, more than the largest shard
count, so 16 shards are 16 real parts of the month (the stock plan has 3 batches at this
size; 1,000-row windows gave 528 batches and made this module 5 minutes of the suite)."""

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]


@pytest.fixture(autouse=True)
def many_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans of this module's runs sized for :data:`ROWS_PER_QUERY` rows a query."""
    monkeypatch.setattr(pipeline, "RowBudget", partial(RowBudget, rows_per_query=ROWS_PER_QUERY))


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
        max_queries_per_request=QUERIES_PER_REQUEST,
    )
    own_client = partial(VapiAnalyticsClient, base_url, KEY) if workers > 1 else None
    with VapiAnalyticsClient(base_url, KEY) as client:
        return runner.run_month(
            settings, client, allocate_shards=shards, workers=workers, client_factory=own_client
        )


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
    assert runs[16].run.batch_count > 16, "every one of 16 shards has a batch to sum"
    for n in (4, 16):
        steps = runs[n].step_seconds
        assert [s for s in steps if s.startswith("allocate_shard[")] == [
            f"allocate_shard[{i}]" for i in range(n)
        ]


def test_mapped_tasks_in_worker_processes_publish_the_same_bytes(
    org: tuple[Path, str], tmp_path: Path
) -> None:
    """Two worker processes (as Celery runs the tasks), two at a time, fetch tasks and shard
    tasks alike, each fetch with a client of its own: the same statement files as one
    process, and every task's own time and peak RSS."""
    config, base_url = org
    single = _run(config, base_url, tmp_path / "single", 1)
    spread = _run(config, base_url, tmp_path / "spread", 4, workers=2)

    assert _files(tmp_path / "spread" / MONTH) == _files(tmp_path / "single" / MONTH)
    assert _figures(tmp_path / "spread" / MONTH) == _figures(tmp_path / "single" / MONTH)
    assert single.task_peak_rss == {}
    mapped = [
        *(f"fetch[{batch}]" for batch in range(spread.run.batch_count)),
        *(f"allocate_shard[{shard}]" for shard in range(4)),
    ]
    assert sorted(spread.task_peak_rss) == sorted(mapped)
    assert all(peak > 20 << 20 for peak in spread.task_peak_rss.values()), spread.task_peak_rss
    assert all(spread.step_seconds[name] > 0 for name in mapped)


def test_workbooks_written_by_workers_are_the_bytes_of_one_process(
    org: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 cost centers: publish starts a workbook worker (as on a 2-CPU worker with room in
    memory; the task's own process is the other CPU's writer), and every file is the one a
    single process writes; with the process too large for a worker beside it within the
    task's memory, it writes them itself."""
    config, base_url = org
    started: list[int] = []
    start = render_workers._start

    def recorded(*arguments: Any) -> Any:
        started.append(1)
        return start(*arguments)

    monkeypatch.setattr(render_workers, "_start", recorded)
    monkeypatch.setattr(render, "_usable_cpus", lambda: 2)
    monkeypatch.setattr(render, "status_bytes", lambda field: 200 << 20)
    _run(config, base_url, tmp_path / "workers", 1)
    assert len(started) == 1
    monkeypatch.setattr(render, "status_bytes", lambda field: 800 << 20)
    _run(config, base_url, tmp_path / "alone", 1)
    assert len(started) == 1, "at 800 MiB a worker of 256 MiB would pass 1 GiB: none"

    assert _files(tmp_path / "workers" / MONTH) == _files(tmp_path / "alone" / MONTH)
    assert _figures(tmp_path / "workers" / MONTH) == _figures(tmp_path / "alone" / MONTH)


def test_each_shard_sums_exactly_its_own_batches_and_every_batch_once(
    org: tuple[Path, str], tmp_path: Path
) -> None:
    """Each shard's files hold the exact sums of the batches dealt to it and of no other,
    recomputed here from all stored responses with ``only`` those batches' queries; the
    deal covers every batch once; and the shards' files added are the sums of the month."""
    config, base_url = org
    shards = 4
    month = _run(config, base_url, tmp_path / "cut", shards)
    work = pipeline.default_open_path(month.run.work_url)
    folder = work / SHARDS_DIR / f"of-{shards:02d}"
    fetched = [FetchedBatch.model_validate(item) for item in month.fetched]
    settings, mapping, plan = pipeline.load_inputs(month.run, work)
    dealt = assign_batches(batch_weights(plan, fetched), shards)
    assert sorted(index for batches in dealt for index in batches) == list(
        range(month.run.batch_count)
    )
    assert all(len(batches) >= 2 for batches in dealt), dealt

    rules = run_rules(work, settings.mapping_rules)
    stored = StoredResults(work, plan, fetched)
    for shard, batches in enumerate(dealt):
        only = {name for index in batches for name in plan.batches[index]}
        own = sum_exactly(settings, mapping, plan, stored, rules, only=only)
        assert (folder / f"groups-{shard:03d}.jsonl").read_bytes() == dumps_groups(own.groups)
        own.groups = []
        assert (folder / f"exact-{shard:03d}.json").read_bytes() == exact_sums.dumps(own)

    whole = sum_exactly(settings, mapping, plan, stored, rules)
    merged = exact_sums.loads((folder / "exact-000.json").read_bytes(), "exact-000.json")
    for shard in range(1, shards):
        name = f"exact-{shard:03d}.json"
        merged.add(exact_sums.loads((folder / name).read_bytes(), name))
    files = [
        (folder / f"groups-{shard:03d}.jsonl", _sha256(folder / f"groups-{shard:03d}.jsonl"))
        for shard in range(shards)
    ]
    with MergedGroups(files, len(plan.definitions)) as groups:
        assert list(groups) == whole.groups, "every breakdown group summed once"
    whole.groups = []
    assert exact_sums.dumps(merged) == exact_sums.dumps(whole), "every row summed once"


def test_the_merge_writes_the_same_breakdowns_with_a_forked_worker_as_alone(
    org: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The merge's breakdowns worker (``breakdown_files.forked_writer``) shares the cost
    centers with the merge; without it (one CPU) the merge writes them all: the same work
    folder files and statement either way."""
    config, base_url = org
    writers: list[object] = []
    forked_writer = breakdown_files.forked_writer

    @contextmanager
    def recorded(*args: Any) -> Iterator[Any]:
        with forked_writer(*args) as writer:
            writers.append(writer)
            yield writer

    monkeypatch.setattr(sharded, "forked_writer", recorded)
    monkeypatch.setattr(breakdown_files, "_usable_cpus", lambda: 2)
    forked = _run(config, base_url, tmp_path / "forked", 4)
    monkeypatch.setattr(breakdown_files, "_usable_cpus", lambda: 1)
    alone = _run(config, base_url, tmp_path / "alone", 4)

    assert len(writers) == 2 and writers[0] is not None and writers[1] is None
    assert forked.allocated["sha256"] == alone.allocated["sha256"]
    for month in (forked, alone):
        assert month.allocated["statement"] == "statement.json"
    works = [Path(pipeline.default_open_path(month.run.work_url).path) for month in (forked, alone)]
    tables = [_files(work / "breakdowns") for work in works]
    assert tables[0] == tables[1] and len(tables[0]) >= 40
    assert _files(tmp_path / "forked" / MONTH) == _files(tmp_path / "alone" / MONTH)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
