"""A rerun and an approval of one month at the same moment: one waits for the other.

The rerun is ``pipeline.publish_run`` in a process of its own (the publish task of
another DAG run), the approval ``pipeline.finalize_run`` in this one (the review task).
Both take the month's lock before reading its state, so whichever holds it first
finishes and the other decides on what it left. The interleaving is forced with pause
points, never sleeps: one party is stopped while holding the lock, and the other is
seen reaching ``lock:waiting`` — it found the month locked — before the first goes on.

- Rerun first: the approval waits, then finds the draft it reviewed replaced by the
  rerun's and is refused; nothing of the approval is written.
- Approval first: the rerun waits, then finds the month final and computing as booked,
  and writes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vapi_chargeback import pipeline, runner
from vapi_chargeback.close.audit import read_events
from vapi_chargeback.close.lifecycle import LifecycleError
from vapi_chargeback.pausepoints import PAUSE_AT_ENV, PAUSE_DIR_ENV
from vapi_chargeback.storage import read_published
from vapi_emulator.data import generate_calls_file

from support.close_run import APPROVED_AT, OCTOBER, Api, config_folder, run
from support.reliability import emulator, snapshot

pytestmark = pytest.mark.slow
WAIT_SECONDS = 60.0

_PUBLISH_CHILD = """
import json, sys
from vapi_chargeback.pipeline import RunInfo, publish_run
run = RunInfo.model_validate_json(open(sys.argv[1], encoding="utf-8").read())
result = publish_run(run, json.loads(open(sys.argv[2], encoding="utf-8").read()))
open(sys.argv[3], "w", encoding="utf-8").write(json.dumps(result))
"""


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    calls = tmp_path_factory.mktemp("calls") / "calls.parquet"
    generate_calls_file(calls, OCTOBER, calls_per_month=2_000)
    with emulator([calls]) as running:
        yield Api(running.base_url)


class Rerun:
    """``publish_run`` of a prepared run in a child process, stopped at ``pause_at``."""

    def __init__(self, prepared: runner.MonthRun, folder: Path, pause_at: str) -> None:
        folder.mkdir(parents=True)
        self.folder = folder
        self.pause_at = pause_at
        (folder / "run.json").write_text(prepared.run.model_dump_json(), encoding="utf-8")
        (folder / "reconciled.json").write_text(json.dumps(prepared.reconciled), encoding="utf-8")
        environment = {k: v for k, v in os.environ.items() if not k.startswith("VAPI_CHARGEBACK_")}
        environment |= {PAUSE_AT_ENV: pause_at, PAUSE_DIR_ENV: str(folder)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _PUBLISH_CHILD, *(str(folder / name) for name in NAMES)],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def wait_paused(self) -> None:
        wait_for(self.folder / f"{self.marker}.paused", self.process)

    def resume(self) -> None:
        (self.folder / f"{self.marker}.resume").write_text("go")

    @property
    def marker(self) -> str:
        return self.pause_at.replace(":", "-")

    def result(self) -> dict[str, Any]:
        output, _ = self.process.communicate(timeout=120)
        assert self.process.returncode == 0, output.decode() if output else ""
        return dict(json.loads((self.folder / "result.json").read_text(encoding="utf-8")))


NAMES = ("run.json", "reconciled.json", "result.json")


class Approval(threading.Thread):
    """``finalize_run`` in a thread of this process; keeps its result or its error."""

    def __init__(self, month: runner.MonthRun) -> None:
        super().__init__(daemon=True)
        self.month = month
        self.outcome: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        assert self.month.published is not None
        try:
            self.outcome = pipeline.finalize_run(
                self.month.run,
                approved_by="fiona.finance",
                approved_at=APPROVED_AT,
                reviewed=self.month.published,
            )
        except BaseException as error:  # handed to the test thread
            self.error = error

    def finish(self) -> None:
        self.join(timeout=120)
        assert not self.is_alive(), "the approval did not finish"


def wait_for(marker: Path, process: subprocess.Popen[bytes] | None = None) -> None:
    """Until a pause point's marker exists (polled, bounded); fail if its process ends first."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not marker.exists():
        if process is not None and process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise AssertionError(f"the rerun ended before {marker.name}:\n{output}")
        assert time.monotonic() < deadline, f"{marker} did not appear"
        time.sleep(0.02)


def test_an_approval_waits_for_a_rerun_and_is_refused_for_the_replaced_draft(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_folder(tmp_path / "config")
    output = tmp_path / "output"
    reviewed = run(api, config, output, OCTOBER, "oct-reviewed")
    rerun = Rerun(
        run(api, config, output, OCTOBER, "oct-rerun", publish=False),
        tmp_path / "rerun",
        "publish:staged",
    )
    rerun.wait_paused()
    signals = tmp_path / "approval"
    signals.mkdir()
    monkeypatch.setenv(PAUSE_AT_ENV, "lock:waiting")
    monkeypatch.setenv(PAUSE_DIR_ENV, str(signals))

    approval = Approval(reviewed)
    approval.start()
    wait_for(signals / "lock-waiting.paused")
    assert read_published(output, OCTOBER)["run_id"] == "oct-reviewed"  # type: ignore[index]
    (signals / "lock-waiting.resume").write_text("go")
    rerun.resume()
    published = rerun.result()
    approval.finish()

    assert published["action"] == "draft"
    assert isinstance(approval.error, LifecycleError), approval.error
    assert "the draft reviewed (run oct-reviewed) was replaced by run oct-rerun" in str(
        approval.error
    )
    manifest = read_published(output, OCTOBER)
    assert manifest is not None
    assert (manifest["status"], manifest["run_id"]) == ("draft", "oct-rerun")
    events = read_events(output, OCTOBER)
    assert [(event.event, event.run_id) for event in events] == [
        ("draft-published", "oct-reviewed"),
        ("draft-published", "oct-rerun"),
    ]


def test_a_rerun_waits_for_an_approval_and_then_writes_nothing(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_folder(tmp_path / "config")
    output = tmp_path / "output"
    reviewed = run(api, config, output, OCTOBER, "oct-reviewed")
    prepared = run(api, config, output, OCTOBER, "oct-rerun", publish=False)
    signals = tmp_path / "approval"
    signals.mkdir()
    monkeypatch.setenv(PAUSE_AT_ENV, "publish:staged")
    monkeypatch.setenv(PAUSE_DIR_ENV, str(signals))

    approval = Approval(reviewed)
    approval.start()
    wait_for(signals / "publish-staged.paused")
    rerun = Rerun(prepared, tmp_path / "rerun", "lock:waiting")
    rerun.wait_paused()
    assert read_published(output, OCTOBER)["status"] == "draft"  # type: ignore[index]
    rerun.resume()
    (signals / "publish-staged.resume").write_text("go")
    approval.finish()
    final = snapshot(output / OCTOBER)
    published = rerun.result()

    assert approval.error is None, approval.error
    assert approval.outcome is not None and approval.outcome["status"] == "final"
    assert published["action"] == "unchanged"
    assert snapshot(output / OCTOBER) == final
    manifest = read_published(output, OCTOBER)
    assert manifest is not None
    assert (manifest["status"], manifest["run_id"], manifest["approved_by"]) == (
        "final",
        "oct-reviewed",
        "fiona.finance",
    )
    assert [event.event for event in read_events(output, OCTOBER)] == [
        "draft-published",
        "approved",
    ]
