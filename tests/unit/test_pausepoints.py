"""The pause-point protocol the crash and concurrency tests drive from another process."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from vapi_chargeback import pausepoints
from vapi_chargeback.pausepoints import PAUSE_AT_ENV, PAUSE_DIR_ENV, pause_point


def test_unset_or_another_point_returns_at_once_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PAUSE_AT_ENV, raising=False)
    monkeypatch.setenv(PAUSE_DIR_ENV, str(tmp_path))
    pause_point("publish", "staged")
    monkeypatch.setenv(PAUSE_AT_ENV, "publish:swapped")
    pause_point("publish", "staged")
    assert list(tmp_path.iterdir()) == []


def test_the_named_point_signals_its_pid_and_waits_for_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PAUSE_AT_ENV, "publish:staged")
    monkeypatch.setenv(PAUSE_DIR_ENV, str(tmp_path))
    paused = tmp_path / "publish-staged.paused"
    seen_before_resume: list[bool] = []
    real_exists = Path.exists

    def resume_on_first_look(path: Path) -> bool:
        # The waiter's first look at the resume file: the marker must be out by now.
        if path.name == "publish-staged.resume" and not seen_before_resume:
            seen_before_resume.append(real_exists(paused))
            (tmp_path / "publish-staged.resume").write_text("go")
        return real_exists(path)

    monkeypatch.setattr(Path, "exists", resume_on_first_look)
    waiter = threading.Thread(target=pause_point, args=("publish", "staged"))
    waiter.start()
    waiter.join(timeout=10)

    assert not waiter.is_alive()
    assert seen_before_resume == [True]
    assert paused.read_text() == str(os.getpid())
    assert not paused.with_suffix(".writing").exists()


def test_a_point_without_a_folder_says_which_variable_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PAUSE_AT_ENV, "publish:rendered")
    monkeypatch.delenv(PAUSE_DIR_ENV, raising=False)
    with pytest.raises(
        RuntimeError, match=f"{PAUSE_AT_ENV}=publish:rendered needs {PAUSE_DIR_ENV}"
    ):
        pause_point("publish", "rendered")


def test_a_forgotten_variable_cannot_hang_for_ever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PAUSE_AT_ENV, "publish:staging")
    monkeypatch.setenv(PAUSE_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(pausepoints, "PAUSE_TIMEOUT_SECONDS", 0.0)
    with pytest.raises(TimeoutError, match=r"publish-staging\.resume did not appear"):
        pause_point("publish", "staging")
