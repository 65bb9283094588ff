"""Retention of ``_runs/``: old folders go, published runs' and leased (in use) ones stay.

Local folders are aged with ``os.utime``; on S3 (moto's server, through Airflow's
``ObjectStoragePath`` as in a deployment) objects cannot be aged, so the sweep is told a
later ``now``. The races are forced, not slept into: the sweeper's own look at a folder
is the injection point where a task takes the lease or writes, exactly between the
sweeper's first decision and its removal.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from vapi_chargeback import runfolders
from vapi_chargeback.runfolders import run_lease, sweep_runs

from support.s3_server import CONN_ENV, CONN_ID, LocalS3, local_s3

OLD = 40
"""Days since an "old" folder was last written; retention keeps 30."""
KEEP = 30


def write(path: Path, text: str = "x", *, age_days: float = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if age_days:
        moment = (datetime.now(UTC) - timedelta(days=age_days)).timestamp()
        os.utime(path, (moment, moment))


def run_folder(output: Path, relative: str, *, age_days: float) -> Path:
    folder = output / "_runs" / relative
    write(folder / "plan.json", age_days=age_days)
    write(folder / "raw" / "batch-0000.json", age_days=age_days)
    for directory in (folder / "raw", folder):
        moment = (datetime.now(UTC) - timedelta(days=age_days)).timestamp()
        os.utime(directory, (moment, moment))
    return folder


def manifest(period: str, run_id: str, **extra: str) -> str:
    return json.dumps({"period": period, "run_id": run_id, **extra})


@pytest.fixture
def output(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    write(
        out / "2026-09" / "manifest.json",
        manifest("2026-09", "scheduled__2026-10-01T00:00:00+00:00"),
    )
    write(
        out / "_versions" / "2026-08" / "v1" / "manifest.json",
        manifest("2026-08", "manual__first", approved_run_id="manual__approver"),
    )
    for relative in (
        "2026-09/scheduled__2026-10-01T00_00_00_00_00",  # the published run
        "2026-09/manual__failed",  # a failed rerun
        "2026-08/manual__first",  # a superseded version's run
        "2026-08/manual__approver",  # the run that approved it
        "2026-08/manual__other",
        "_mtd/2026-10-05/scheduled__2026-10-05",
    ):
        run_folder(out, relative, age_days=OLD)
    run_folder(out, "2026-10/manual__yesterday", age_days=1)
    return out


def test_old_unpublished_folders_go_published_and_recent_ones_stay(output: Path) -> None:
    report = sweep_runs(output, keep_days=KEEP)

    assert sorted(report.removed) == [
        "2026-08/manual__other",
        "2026-09/manual__failed",
        "_mtd/2026-10-05/scheduled__2026-10-05",
    ]
    assert sorted(report.published) == [
        "2026-08/manual__approver",
        "2026-08/manual__first",
        "2026-09/scheduled__2026-10-01T00_00_00_00_00",
    ]
    assert report.recent == ["2026-10/manual__yesterday"]
    for relative in report.removed:
        assert not (output / "_runs" / relative).exists()
    for relative in [*report.published, *report.recent]:
        assert (output / "_runs" / relative / "raw" / "batch-0000.json").is_file()
    assert (output / "2026-09" / "manifest.json").is_file(), "statements are never touched"


def test_a_folder_whose_lease_is_held_is_kept(output: Path) -> None:
    busy = output / "_runs" / "2026-09" / "manual__failed"
    with run_lease(busy):
        report = sweep_runs(output, keep_days=KEEP)
    assert "2026-09/manual__failed" in report.in_use
    assert (busy / "plan.json").is_file()
    assert "2026-09/manual__failed" in sweep_runs(output, keep_days=KEEP).removed


def test_a_task_that_writes_between_decision_and_removal_keeps_its_folder(
    output: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweeper found the folder old; before it takes the lease a task (a cleared run
    reusing its id) takes it and writes. Under the lease the sweeper looks again: kept."""
    busy = output / "_runs" / "2026-09" / "manual__failed"
    looks = {"count": 0}
    newest = runfolders._newest_local

    def look_then_task_writes(folder: Path) -> float:
        seen = newest(folder)
        if folder == busy:
            looks["count"] += 1
            if looks["count"] == 1:
                with run_lease(busy):
                    write(busy / "statement.json")
        return seen

    monkeypatch.setattr(runfolders, "_newest_local", look_then_task_writes)
    report = sweep_runs(output, keep_days=KEEP)
    assert looks["count"] == 2, "the sweeper must look again under the lease"
    assert "2026-09/manual__failed" in report.recent
    assert (busy / "statement.json").is_file() and (busy / "plan.json").is_file()


def test_a_task_that_takes_the_lease_after_the_decision_blocks_the_removal(
    output: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task holds the lease from the moment the sweeper decided until after it tried."""
    busy = output / "_runs" / "2026-09" / "manual__failed"
    holding, release, done = threading.Event(), threading.Event(), threading.Event()

    def task() -> None:
        with run_lease(busy):
            holding.set()
            release.wait(timeout=60)
        done.set()

    newest = runfolders._newest_local

    def look_then_task_starts(folder: Path) -> float:
        seen = newest(folder)
        if folder == busy and not holding.is_set():
            threading.Thread(target=task, daemon=True).start()
            assert holding.wait(timeout=60)
        return seen

    monkeypatch.setattr(runfolders, "_newest_local", look_then_task_starts)
    try:
        report = sweep_runs(output, keep_days=KEEP)
    finally:
        release.set()
    assert done.wait(timeout=60)
    assert "2026-09/manual__failed" in report.in_use
    assert (busy / "plan.json").is_file()


def test_a_lease_waits_while_the_sweeper_removes_and_then_finds_the_folder_gone(
    output: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task arriving during the removal cannot see half a folder: it waits for the lease."""
    doomed = output / "_runs" / "2026-08" / "manual__other"
    seen: list[bool] = []
    started, finished = threading.Event(), threading.Event()

    def task() -> None:
        started.set()
        with run_lease(doomed):
            seen.append((doomed / "plan.json").exists() or (doomed / "raw").exists())
        finished.set()

    real_rmtree = runfolders.shutil.rmtree

    def rmtree_with_a_task_arriving(path: Any, **kwargs: Any) -> None:
        if Path(path) == doomed:
            threading.Thread(target=task, daemon=True).start()
            assert started.wait(timeout=60)
            assert not finished.is_set(), "the task must wait for the sweeper's lease"
        real_rmtree(path, **kwargs)

    monkeypatch.setattr(runfolders.shutil, "rmtree", rmtree_with_a_task_arriving)
    report = sweep_runs(output, keep_days=KEEP)
    assert finished.wait(timeout=60)
    assert "2026-08/manual__other" in report.removed
    assert seen == [False]


# Object storage


@pytest.fixture(scope="module")
def s3() -> Iterator[LocalS3]:
    with local_s3() as server, pytest.MonkeyPatch.context() as env:
        env.setenv(CONN_ENV, server.connection_json())
        _forget_airflow_s3_store()
        yield server
        _forget_airflow_s3_store()


def _forget_airflow_s3_store() -> None:
    from airflow.sdk.io import store

    for alias in ("s3", f"s3-{CONN_ID}"):
        store._STORE_CACHE.pop(alias, None)


def s3_output(s3: LocalS3) -> Any:
    from airflow.sdk import ObjectStoragePath

    root = ObjectStoragePath(s3.url(f"statements-{uuid.uuid4().hex[:8]}"))
    (root / "2026-09" / "manifest.json").write_text(manifest("2026-09", "manual__published"))
    for relative in (
        "2026-09/manual__published",
        "2026-09/manual__failed",
        "2026-09/manual__busy",
        "_mtd/2026-10-05/scheduled__2026-10-05",
    ):
        (root / "_runs" / relative / "plan.json").write_text("{}")
        (root / "_runs" / relative / "raw" / "batch-0000.json").write_text("[]")
    return root


LATER = datetime.now(UTC) + timedelta(days=OLD)
"""Objects cannot be aged on S3: the sweep is told it runs 40 days from now."""


def test_s3_old_folders_go_published_and_leased_ones_stay(s3: LocalS3) -> None:
    root = s3_output(s3)
    with run_lease(root / "_runs" / "2026-09" / "manual__busy"):
        report = sweep_runs(root, keep_days=KEEP, now=LATER)
    assert sorted(report.removed) == [
        "2026-09/manual__failed",
        "_mtd/2026-10-05/scheduled__2026-10-05",
    ]
    assert report.published == ["2026-09/manual__published"]
    assert report.in_use == ["2026-09/manual__busy"]
    keys = sorted(s3.objects(root.path.split("/", 1)[1]))
    assert not [key for key in keys if "manual__failed" in key or "_mtd" in key]
    assert [key for key in keys if "manual__busy/raw" in key]
    assert not [key for key in keys if "/.leases/" in key], "the lease is gone with its task"
    assert sweep_runs(root, keep_days=KEEP, now=LATER).removed == ["2026-09/manual__busy"]


def test_s3_a_task_starting_between_decision_and_removal_keeps_its_folder(
    s3: LocalS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = s3_output(s3)
    busy = root / "_runs" / "2026-09" / "manual__failed"
    lease = run_lease(busy)
    real_listing = runfolders._listing
    calls = {"count": 0}

    def listing_then_task_starts(fs: Any, prefix: str) -> dict[str, dict[str, Any]]:
        if prefix.endswith("/_runs/2026-09/manual__failed"):
            calls["count"] += 1
            lease.__enter__()
        return real_listing(fs, prefix)

    monkeypatch.setattr(runfolders, "_listing", listing_then_task_starts)
    try:
        report = sweep_runs(root, keep_days=KEEP, now=LATER)
    finally:
        lease.__exit__(None, None, None)
    assert calls["count"] == 1, "the sweeper lists the folder again right before removing it"
    assert "2026-09/manual__failed" in report.in_use
    assert (busy / "raw" / "batch-0000.json").exists()
