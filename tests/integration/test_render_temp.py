"""A publisher killed with SIGKILL leaves its render folder; the next publish removes it.

The child process really publishes, into a worker temp directory of its own (``TMPDIR``),
and stops at the ``publish:rendered`` pause point — every file rendered, the output not
yet touched. While it is alive its folder is a concurrent publisher's and must survive a
cleanup; after ``kill -9`` it is a leftover, and the next publish removes it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from vapi_chargeback.statements import render_temp
from vapi_chargeback.statements.render_temp import remove_stale_render_folders
from vapi_chargeback.storage import publish_statement, read_published

from support.storage import PERIOD, small_statement

CHILD = textwrap.dedent(
    """
    import sys
    from vapi_chargeback.storage import publish_statement
    from support.storage import small_statement

    publish_statement(small_statement(), sys.argv[1])
    """
)


def wait_for(marker: Path, child: subprocess.Popen[bytes]) -> None:
    """Until the child signals it reached its pause point (or dies trying)."""
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        assert time.monotonic() < deadline, "the publisher never reached publish:rendered"
        time.sleep(0.05)


def render_folders(temp: Path) -> list[Path]:
    return sorted(path for path in temp.iterdir() if path.name.startswith("vapi-chargeback-"))


def test_a_killed_publishers_render_folder_is_removed_by_the_next_publish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp, pauses, output = tmp_path / "worker-tmp", tmp_path / "pauses", tmp_path / "out"
    for folder in (temp, pauses):
        folder.mkdir()
    environment = {
        **os.environ,
        "TMPDIR": str(temp),
        "VAPI_CHARGEBACK_PAUSE_AT": "publish:rendered",
        "VAPI_CHARGEBACK_PAUSE_DIR": str(pauses),
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path]),
    }
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(output)], env=environment, stderr=subprocess.PIPE
    )
    try:
        wait_for(pauses / "publish-rendered.paused", child)
        (leftover,) = render_folders(temp)
        assert any(leftover.rglob("*.xlsx")), "the child rendered its workbooks there"

        assert remove_stale_render_folders(str(temp)) == [], "a live publisher's folder stays"
        assert leftover.is_dir()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert render_folders(temp) == [leftover], "SIGKILL ran no cleanup"

    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    publish_statement(small_statement(), output)

    assert render_folders(temp) == [], "the next publish removed the leftover and its own"
    assert read_published(output, PERIOD) is not None


def test_only_our_folders_and_unlocked_ones_only_when_old(tmp_path: Path) -> None:
    ours_unlocked_young = tmp_path / "vapi-chargeback-2026-10-young123"
    ours_unlocked_old = tmp_path / "vapi-chargeback-2026-10-old_4567"
    not_ours = tmp_path / "vapi-chargeback-cache"
    someone_else = tmp_path / "pytest-of-root"
    for folder in (ours_unlocked_young, ours_unlocked_old, not_ours, someone_else):
        folder.mkdir()
        (folder / "file").write_text("x")
    old = time.time() - render_temp.UNLOCKED_STALE_AFTER - 60
    os.utime(ours_unlocked_old, (old, old))
    os.utime(not_ours, (old, old))

    assert remove_stale_render_folders(str(tmp_path)) == [ours_unlocked_old]
    assert ours_unlocked_young.is_dir() and not_ours.is_dir() and someone_else.is_dir()


def test_a_folder_held_in_this_process_is_kept(tmp_path: Path) -> None:
    with render_temp.render_folder(PERIOD, temp_dir=str(tmp_path)) as folder:
        assert remove_stale_render_folders(str(tmp_path)) == []
        assert folder.is_dir()
    assert not folder.exists()
