"""Two runs of the same month at once end with one whole set, and readers never see a mix.

Each publisher is ``pipeline.publish_run`` in its own process (two Airflow workers
would be two processes), with a different statement for the same month. A reader
thread polls ``read_published`` all along and records every manifest it is given: each
must be one of the complete sets, never ``None`` once a month exists, never a mix. The
per-month lock makes the second publisher wait; the last complete writer wins.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vapi_chargeback.pipeline import publish_run
from vapi_chargeback.storage import read_published
from vapi_emulator.data import generate_calls_file

from support.reliability import (
    MONTH,
    Emulator,
    PreparedRun,
    PublishProcess,
    edited_config,
    emulator,
    hidden_leftovers,
    make_client,
    prepare_run,
    run_pipeline,
    snapshot,
)


@dataclass(frozen=True)
class Contender:
    prepared: PreparedRun
    files: dict[str, str]
    manifest: dict[str, Any]


class Reader(threading.Thread):
    """Reads the month as fast as it can until stopped; keeps the run id of every read."""

    def __init__(self, output: Path) -> None:
        super().__init__(daemon=True)
        self.output = output
        self.seen: list[str | None] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            manifest = read_published(self.output, MONTH)
            self.seen.append(None if manifest is None else manifest["run_id"])
            time.sleep(0.005)

    def stop(self) -> list[str | None]:
        self.stopped.set()
        self.join(timeout=30)
        return self.seen


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    calls = tmp_path_factory.mktemp("calls") / "calls.parquet"
    generate_calls_file(calls, MONTH, calls_per_month=3_000)
    with emulator([calls]) as running:
        yield running


def contenders(api: Emulator, output: Path, tmp_path: Path) -> dict[str, Contender]:
    """October published once, then two more runs ready to publish, each with its own fee."""
    with make_client(api.base_url) as client:
        run_pipeline(output, client, run_id="run-first")
        prepared = {
            name: prepare_run(
                output,
                client,
                run_id=f"run-{name}",
                config=edited_config(tmp_path / name, "amount: 500.00", f"amount: {fee}"),
            )
            for name, fee in (("b", "600.00"), ("c", "700.00"))
        }
    result = {}
    for name, ready in prepared.items():
        reference = tmp_path / f"reference-{name}"
        publish_run(
            ready.run.model_copy(update={"output_url": reference.as_uri()}), ready.reconciled
        )
        manifest = read_published(reference, MONTH)
        assert manifest is not None
        result[name] = Contender(ready, snapshot(reference / MONTH), manifest)
    return result


def lock_is_held(output: Path) -> bool:
    with (output / f".lock-{MONTH}").open("a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def test_second_publisher_waits_for_the_first_and_the_last_writer_wins(
    api: Emulator, tmp_path: Path
) -> None:
    output = tmp_path / "output"
    runs = contenders(api, output, tmp_path)
    reader = Reader(output)
    reader.start()

    first = PublishProcess(runs["b"].prepared, tmp_path / "b", pause_at="staged")
    first.wait_paused()
    assert lock_is_held(output), "the first publisher holds the month's lock while staged"
    second = PublishProcess(runs["c"].prepared, tmp_path / "c", pause_at=None)
    time.sleep(1.0)
    assert second.process.poll() is None, "the second publisher must wait for the lock"
    during = read_published(output, MONTH)
    assert during is not None and during["run_id"] == "run-first"
    first.resume()
    first.finish()
    second.finish()
    seen = reader.stop()

    assert snapshot(output / MONTH) == runs["c"].files
    assert read_published(output, MONTH) == runs["c"].manifest
    assert None not in seen
    assert set(seen) <= {"run-first", "run-b", "run-c"}
    assert seen[-1] == "run-c"
    assert hidden_leftovers(output) == []


def test_two_publishers_started_together_leave_one_whole_set(api: Emulator, tmp_path: Path) -> None:
    output = tmp_path / "output"
    runs = contenders(api, output, tmp_path)
    reader = Reader(output)
    reader.start()

    publishers = [
        PublishProcess(runs[name].prepared, tmp_path / name, pause_at=None) for name in ("b", "c")
    ]
    for publisher in publishers:
        publisher.finish()
    seen = reader.stop()

    final = read_published(output, MONTH)
    assert final is not None
    winner = {"run-b": "b", "run-c": "c"}[final["run_id"]]
    assert final == runs[winner].manifest
    assert snapshot(output / MONTH) == runs[winner].files
    assert None not in seen
    assert set(seen) <= {"run-first", "run-b", "run-c"}
    assert hidden_leftovers(output) == []
