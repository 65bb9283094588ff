"""Retention of run work folders: drop old ones, never a published run's, never one in use.

Every run leaves a work folder — ``{output}/_runs/{YYYY-MM}/{run}/`` for the monthly DAG,
``{output}/_runs/_mtd/{YYYY-MM-DD}/{run}/`` for the daily one — with its plan, raw API
responses and statement: ~150 MB for a large org, failed runs' too. :func:`sweep_runs`
removes the folders untouched (no file written) for ``retention.runs_days`` days, except:

- **published runs**: the run named (``run_id``, ``approved_run_id``) by a month's
  ``manifest.json`` and by every superseded version's under ``_versions/`` — the
  provenance of a number finance booked;
- **folders in use**: a task working in a folder holds its *lease* (:func:`run_lease`),
  and a folder whose lease is held is skipped.

On a local filesystem the lease is an ``flock`` on ``_runs/.leases/{folder}.lock``: tasks
hold it shared, the sweeper tries it exclusively without waiting, and decides *again*
under it (age and published state), so a task that starts while a folder is removed
waits for the removal and then finds its folder gone — a clear ``RunStateError`` — never
half a folder. The kernel drops a killed task's lock. Object storage has no lock: a task
writes an object under ``_runs/.leases/{folder}/`` and deletes it at the end; the sweeper
keeps a folder with a lease object younger than a day (an older one is a killed task's
leftover) and looks at the folder and its leases again right before removing it,
which narrows the race to that moment.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vapi_chargeback.published import OutputRoot, StorageLocation, _locate

log = logging.getLogger(__name__)

RUNS_DIR = "_runs"
MTD_DIR = "_mtd"
LEASES_DIR = ".leases"
LEASE_TIMEOUT_SECONDS = 600.0
LEASE_POLL_SECONDS = 0.1
LEASE_MAX_AGE = timedelta(days=1)
"""Longer than any task may run (its ``execution_timeout``, 60 minutes at most)."""
VERSIONS_DIR = "_versions"
MANIFEST = "manifest.json"


@dataclass
class SweepReport:
    removed: list[str] = field(default_factory=list)
    """Folders removed, relative to ``_runs/`` (``2026-10/manual__…``)."""
    published: list[str] = field(default_factory=list)
    in_use: list[str] = field(default_factory=list)
    recent: list[str] = field(default_factory=list)


def _safe_name(run_id: str) -> str:
    from vapi_chargeback.pipeline import safe_name

    return safe_name(run_id)


def _lease_file(runs: Path, relative: str) -> Path:
    return runs / LEASES_DIR / (relative.replace("/", "--") + ".lock")


@contextmanager
def run_lease(work: OutputRoot) -> Iterator[None]:
    """Hold the lease of the work folder ``work`` while a task works in it (see the module)."""
    location = _locate(work)
    if isinstance(location, Path):
        runs, relative = _split_local(location)
        if runs is None:
            yield
            return
        lock = _lease_file(runs, relative)
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a+b") as handle:
            deadline = time.monotonic() + LEASE_TIMEOUT_SECONDS
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"{lock}: the run-folder sweeper held it {LEASE_TIMEOUT_SECONDS:.0f} s"
                        ) from None
                    time.sleep(LEASE_POLL_SECONDS)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return
    remote_runs, relative = _split(location.path.rstrip("/"))
    if remote_runs is None:
        yield
        return
    fs = location.fs
    marker = f"{_lease_prefix(remote_runs, relative)}/{uuid.uuid4().hex}"
    fs.pipe_file(marker, datetime.now(UTC).isoformat().encode())
    try:
        yield
    finally:
        fs.rm_file(marker)


def _split(work: str) -> tuple[str | None, str]:
    """``("…/_runs", "2026-10/run")`` for a work folder, ``(None, "")`` for anything else."""
    parts = work.split("/")
    if RUNS_DIR not in parts:
        return None, ""
    index = len(parts) - 1 - parts[::-1].index(RUNS_DIR)
    return "/".join(parts[: index + 1]), "/".join(parts[index + 1 :])


def _split_local(work: Path) -> tuple[Path | None, str]:
    runs, relative = _split(work.as_posix())
    return (None, "") if runs is None else (Path(runs), relative)


def _lease_prefix(runs: str, relative: str) -> str:
    """Where tasks on object storage leave their lease objects: beside, not in, the folder."""
    return f"{runs}/{LEASES_DIR}/{relative.replace('/', '--')}"


def published_runs(output_root: OutputRoot) -> set[tuple[str, str]]:
    """``(YYYY-MM, run folder name)`` of every run a current or superseded version names."""
    location = _locate(output_root)
    manifests: list[tuple[str, bytes]] = []
    if isinstance(location, Path):
        for path in [
            *location.glob(f"*/{MANIFEST}"),
            *location.glob(f"{VERSIONS_DIR}/*/*/{MANIFEST}"),
        ]:
            try:
                manifests.append((path.as_posix(), path.read_bytes()))
            except OSError:
                continue
    else:
        fs, base = location.fs, location.path.rstrip("/")
        for pattern in (f"{base}/*/{MANIFEST}", f"{base}/{VERSIONS_DIR}/*/*/{MANIFEST}"):
            for name in fs.glob(pattern):
                try:
                    manifests.append((name, fs.cat_file(name)))
                except OSError:
                    continue
    runs: set[tuple[str, str]] = set()
    for name, raw in manifests:
        try:
            manifest: Any = json.loads(raw)
        except ValueError:
            log.warning("%s is not JSON: its run folder is not protected by it", name)
            continue
        period = manifest.get("period") if isinstance(manifest, dict) else None
        if not isinstance(period, str):
            continue
        for key in ("run_id", "approved_run_id"):
            run_id = manifest.get(key)
            if isinstance(run_id, str) and run_id:
                runs.add((period, _safe_name(run_id)))
    return runs


def sweep_runs(
    output_root: OutputRoot, *, keep_days: int, now: datetime | None = None
) -> SweepReport:
    """Remove work folders untouched for ``keep_days`` days, but for published and leased ones."""
    now = now or datetime.now(UTC)
    cutoff = (now - timedelta(days=keep_days)).timestamp()
    location = _locate(output_root)
    keep = published_runs(output_root)
    report = SweepReport()
    if isinstance(location, Path):
        _sweep_local(location / RUNS_DIR, keep, cutoff, report, output_root)
    else:
        _sweep_remote(location, keep, cutoff, report, output_root)
    if report.removed:
        log.info("removed %d run folders older than %d days", len(report.removed), keep_days)
    return report


def _sweep_local(
    runs: Path, keep: set[tuple[str, str]], cutoff: float, report: SweepReport, root: OutputRoot
) -> None:
    if not runs.is_dir():
        return
    folders: list[tuple[str, str]] = []
    for entry in sorted(runs.iterdir()):
        if entry.name == MTD_DIR:
            folders += [
                (f"{MTD_DIR}/{day.name}", run.name)
                for day in sorted(entry.iterdir())
                if day.is_dir()
                for run in sorted(day.iterdir())
                if run.is_dir()
            ]
        elif entry.is_dir() and not entry.name.startswith("."):
            folders += [(entry.name, run.name) for run in sorted(entry.iterdir()) if run.is_dir()]
    for group, run in folders:
        relative = f"{group}/{run}"
        folder = runs / relative
        if (group, run) in keep:
            report.published.append(relative)
            continue
        if _newest_local(folder) >= cutoff:
            report.recent.append(relative)
            continue
        lock = _lease_file(runs, relative)
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                report.in_use.append(relative)
                continue
            try:
                # Decide again under the lease: a task may have written or published since.
                if (group, run) in published_runs(root):
                    report.published.append(relative)
                elif _newest_local(folder) >= cutoff:
                    report.recent.append(relative)
                else:
                    shutil.rmtree(folder, ignore_errors=True)
                    lock.unlink(missing_ok=True)
                    report.removed.append(relative)
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _newest_local(folder: Path) -> float:
    newest = 0.0
    for directory, _, files in os.walk(folder):
        for name in [".", *files]:
            try:
                newest = max(newest, os.stat(os.path.join(directory, name)).st_mtime)
            except FileNotFoundError:
                continue
    return newest


def _sweep_remote(
    location: StorageLocation,
    keep: set[tuple[str, str]],
    cutoff: float,
    report: SweepReport,
    root: OutputRoot,
) -> None:
    fs, runs = location.fs, f"{location.path.rstrip('/')}/{RUNS_DIR}"
    folders: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for name, info in _listing(fs, runs).items():
        parts = name[len(runs) + 1 :].split("/")
        if parts[0] == MTD_DIR and len(parts) >= 4:
            key = (f"{MTD_DIR}/{parts[1]}", parts[2])
        elif parts[0] != MTD_DIR and not parts[0].startswith(".") and len(parts) >= 3:
            key = (parts[0], parts[1])
        else:
            continue
        folders.setdefault(key, []).append(info)
    for group, run in sorted(folders):
        relative = f"{group}/{run}"
        if (group, run) in keep:
            report.published.append(relative)
            continue
        objects = folders[(group, run)]
        leases = _lease_prefix(runs, relative)
        if _newest_remote(list(_listing(fs, leases).values())) >= _live_since():
            report.in_use.append(relative)
            continue
        if _newest_remote(objects) >= cutoff:
            report.recent.append(relative)
            continue
        # Look again right before removing: a task that started meanwhile keeps the folder.
        again = list(_listing(fs, f"{runs}/{relative}").values())
        lease_objects = list(_listing(fs, leases).values())
        if _newest_remote(again) >= cutoff or _newest_remote(lease_objects) >= _live_since():
            report.in_use.append(relative)
            continue
        if (group, run) in published_runs(root):
            report.published.append(relative)
            continue
        fs.rm([str(info["name"]) for info in [*again, *lease_objects]])
        report.removed.append(relative)


def _live_since() -> float:
    """Leases written since then are live; older ones are killed tasks' leftovers. Real time,
    not the sweep's ``now``: a lease is about tasks running at this moment."""
    return (datetime.now(UTC) - LEASE_MAX_AGE).timestamp()


def _listing(fs: Any, prefix: str) -> dict[str, dict[str, Any]]:
    fs.invalidate_cache(prefix)
    try:
        found: dict[str, dict[str, Any]] = fs.find(prefix, detail=True)
    except FileNotFoundError:
        return {}
    return {
        name.rstrip("/"): info for name, info in found.items() if info.get("type") != "directory"
    }


def _newest_remote(objects: list[dict[str, Any]]) -> float:
    newest = 0.0
    for info in objects:
        modified = info.get("LastModified") or info.get("mtime") or info.get("last_modified")
        if isinstance(modified, datetime):
            newest = max(newest, modified.timestamp())
        elif isinstance(modified, int | float):
            newest = max(newest, float(modified))
    return newest
