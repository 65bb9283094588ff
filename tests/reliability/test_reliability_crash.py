"""A publish task killed with SIGKILL at any step leaves the previous month readable and whole.

The publisher is ``pipeline.publish_run`` in its own process, exactly what the DAG's
publish task calls, stopped at one of ``storage``'s test-only pause points and killed
there with SIGKILL (nothing of it runs afterwards: no ``finally``, no cleanup). Then:
the month folder is byte-for-byte the previous set (or, once the swap has happened, the
new one) and ``read_published`` trusts it; a reader who skips dot-entries sees nothing
but month folders and ``_runs``; and a rerun of the same publish completes and leaves no
staging leftovers. ``tests/integration/test_storage_crash.py`` covers the same at the
level of single system calls; this file drives the real pipeline steps.
"""

from __future__ import annotations

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
    visible_entries,
)


@dataclass(frozen=True)
class MonthSets:
    output: Path
    old_files: dict[str, str]
    old_manifest: dict[str, Any]
    new_files: dict[str, str]
    new_manifest: dict[str, Any]
    new: PreparedRun


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    calls = tmp_path_factory.mktemp("calls") / "calls.parquet"
    generate_calls_file(calls, MONTH, calls_per_month=3_000)
    with emulator([calls]) as running:
        yield running


@pytest.fixture
def sets(api: Emulator, tmp_path: Path) -> MonthSets:
    """October published once (old); a second run with a higher platform fee ready to publish (new)."""
    output = tmp_path / "output"
    config = edited_config(tmp_path / "config", "amount: 500.00", "amount: 600.00")
    with make_client(api.base_url) as client:
        run_pipeline(output, client, run_id="run-old")
        new = prepare_run(output, client, run_id="run-new", config=config)
    reference = tmp_path / "reference"
    publish_run(new.run.model_copy(update={"output_url": reference.as_uri()}), new.reconciled)
    old_manifest, new_manifest = read_published(output, MONTH), read_published(reference, MONTH)
    assert old_manifest is not None and new_manifest is not None
    assert old_manifest["totals"] != new_manifest["totals"], "the two sets must differ"
    return MonthSets(
        output,
        snapshot(output / MONTH),
        old_manifest,
        snapshot(reference / MONTH),
        new_manifest,
        new,
    )


@pytest.mark.parametrize(
    ("point", "visible"),
    [
        pytest.param("rendered", "old", id="rendered-before-touching-the-output"),
        pytest.param("staging", "old", id="half-way-through-staging"),
        pytest.param("staged", "old", id="staged-before-the-swap"),
        pytest.param("swapped", "new", id="swapped-before-the-old-set-is-deleted"),
    ],
)
def test_publish_killed_at_each_step_leaves_a_whole_month_then_a_rerun_completes(
    sets: MonthSets, tmp_path: Path, point: str, visible: str
) -> None:
    child = PublishProcess(sets.new, tmp_path / "child", pause_at=point)
    child.wait_paused()
    child.kill()

    expected_files, expected_manifest = {
        "old": (sets.old_files, sets.old_manifest),
        "new": (sets.new_files, sets.new_manifest),
    }[visible]
    assert snapshot(sets.output / MONTH) == expected_files
    assert read_published(sets.output, MONTH) == expected_manifest
    assert visible_entries(sets.output) == sorted([MONTH, "_runs"])
    assert all(name.startswith(".staging-") for name in hidden_leftovers(sets.output))

    publish_run(sets.new.run, sets.new.reconciled)

    assert snapshot(sets.output / MONTH) == sets.new_files
    assert read_published(sets.output, MONTH) == sets.new_manifest
    assert hidden_leftovers(sets.output) == []


def test_a_killed_first_publish_leaves_no_month_at_all(api: Emulator, tmp_path: Path) -> None:
    """Nothing published before: killed mid-staging, readers see no month (never a partial one)."""
    output = tmp_path / "output"
    with make_client(api.base_url) as client:
        first = prepare_run(output, client, run_id="first")
    child = PublishProcess(first, tmp_path / "child", pause_at="staging")
    child.wait_paused()
    child.kill()

    assert read_published(output, MONTH) is None
    assert visible_entries(output) == ["_runs"]

    publish_run(first.run, first.reconciled)
    assert read_published(output, MONTH) is not None
    assert hidden_leftovers(output) == []
