"""What the close needs from storage: a re-entrant month lock, kept versions, verified reads.

``month_lock`` is held by a publish or an approval while it reads the month's state and
replaces the set, and publishing takes it again inside: it must not deadlock in its own
thread and must still exclude every other holder. ``keep_version`` copies a set before a
restatement replaces it; the copy is verified, reused when equal, never overwritten when
different. ``read_published_file`` never returns bytes its manifest does not vouch for.
"""

from __future__ import annotations

import fcntl
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from vapi_chargeback.pausepoints import PAUSE_AT_ENV, PAUSE_DIR_ENV
from vapi_chargeback.storage import (
    PublishedSetError,
    keep_version,
    month_lock,
    publish_statement,
    read_published,
    read_published_file,
)

from support.storage import PERIOD, small_statement, snapshot


def held_elsewhere(root: Path) -> bool:
    """Whether the month's lock is held, as another process's non-blocking try sees it."""
    with (root / f".lock-{PERIOD}").open("a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def test_the_month_lock_is_reentrant_in_its_thread_and_excludes_other_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signals = tmp_path / "signals"
    signals.mkdir()
    monkeypatch.setenv(PAUSE_AT_ENV, "lock:waiting")
    monkeypatch.setenv(PAUSE_DIR_ENV, str(signals))
    output = tmp_path / "output"
    entered = threading.Event()

    def other() -> None:
        with month_lock(output, PERIOD):
            entered.set()

    with month_lock(output, PERIOD):
        publish_statement(small_statement(), output)
        assert held_elsewhere(output)
        thread = threading.Thread(target=other)
        thread.start()
        wait_for(signals / "lock-waiting.paused")
        (signals / "lock-waiting.resume").write_text("go")
        assert not entered.is_set()
    thread.join(timeout=30)
    assert entered.is_set()
    assert not held_elsewhere(output)
    assert read_published(output, PERIOD) is not None


def wait_for(marker: Path) -> None:
    """Until ``marker`` exists: a pause point reached (bounded, polled)."""
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, f"{marker} did not appear"
        time.sleep(0.01)


def test_a_kept_version_is_the_whole_set_verified_and_reused_when_equal(tmp_path: Path) -> None:
    publish_statement(small_statement(), tmp_path)
    manifest = read_published(tmp_path, PERIOD)

    url = keep_version(tmp_path, PERIOD, 1)

    kept = tmp_path / "_versions" / PERIOD / "v1"
    assert url == kept.as_uri()
    assert snapshot(kept) == snapshot(tmp_path / PERIOD)
    assert read_published(tmp_path, PERIOD, version=1) == manifest
    assert keep_version(tmp_path, PERIOD, 1) == url, "a restatement interrupted after keeping"
    assert [path.name for path in kept.parent.iterdir()] == ["v1"]


def test_a_different_kept_version_is_never_overwritten(tmp_path: Path) -> None:
    publish_statement(small_statement(), tmp_path)
    keep_version(tmp_path, PERIOD, 1)
    kept = snapshot(tmp_path / "_versions" / PERIOD / "v1")
    publish_statement(small_statement(base="99.00"), tmp_path)

    with pytest.raises(PublishedSetError, match="already holds a different v1"):
        keep_version(tmp_path, PERIOD, 1)

    assert snapshot(tmp_path / "_versions" / PERIOD / "v1") == kept


def test_keeping_a_version_the_month_does_not_hold_is_refused(tmp_path: Path) -> None:
    publish_statement(
        replace(small_statement(), version=2, restatement_reason="a fixed mapping"), tmp_path
    )

    with pytest.raises(PublishedSetError, match="holds v2, not v1"):
        keep_version(tmp_path, PERIOD, 1)
    with pytest.raises(PublishedSetError, match="not published"):
        keep_version(tmp_path, "2026-09", 1)
    assert not (tmp_path / "_versions").exists()


def test_a_published_file_is_returned_only_as_its_manifest_lists_it(tmp_path: Path) -> None:
    publish_statement(small_statement(), tmp_path)
    name = f"chargeback-{PERIOD}.csv"

    manifest, data = read_published_file(tmp_path, PERIOD, name)

    assert data == (tmp_path / PERIOD / name).read_bytes()
    assert manifest == read_published(tmp_path, PERIOD)
    (tmp_path / PERIOD / name).write_bytes(data.replace(b"10.00", b"10.01"))
    with pytest.raises(PublishedSetError, match="not published or does not verify"):
        read_published_file(tmp_path, PERIOD, name)
    publish_statement(small_statement(), tmp_path)
    with pytest.raises(PublishedSetError, match=r"lists no nothing\.csv"):
        read_published_file(tmp_path, PERIOD, "nothing.csv")
