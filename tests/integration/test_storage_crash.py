"""A publisher killed with SIGKILL at each step of a local publish (nothing of it runs after).

The child process publishes and kills itself the moment it reaches the chosen step — the
n-th call of a storage function or of ``os.rename`` — so no ``finally`` or cleanup runs,
exactly as when a worker is killed. ``pipeline.publish_run`` (what the DAG's publish task
calls) is ``publish_statement`` after loading the statement, so these steps are the task's.

After the kill the month folder is byte-for-byte the previous complete set or the new
one — or, only between the two renames of the fallback swap, absent — never a mix;
``read_published`` returns exactly one of the two manifests (there, the set moved aside);
a reader who skips dot-entries sees nothing but the month; the leftovers are the hidden
staging or moved-aside dirs only; and the next publish repairs them and completes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vapi_chargeback.statements.validate import StatementError
from vapi_chargeback.storage import publish_statement, read_published

from support.storage import PERIOD, hidden_leftovers, small_statement, snapshot

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from vapi_chargeback import storage
    from support.storage import small_statement

    root, point, exchange = sys.argv[1], sys.argv[2], sys.argv[3] == "exchange"
    name, _, count = point.partition("#")
    calls = {"n": 0}

    def dies_on_call(original):
        def wrapper(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == int(count):
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)
        return wrapper

    if not exchange:
        storage._exchange = lambda first, second: False
    if name == "rename":
        os.rename = dies_on_call(os.rename)
    else:
        setattr(storage, name, dies_on_call(getattr(storage, name)))
    storage.publish_statement(small_statement(base="50.00"), root)
    """
)


@dataclass(frozen=True)
class Sets:
    """The previous set published under ``output`` and the new one published elsewhere."""

    output: Path
    old_files: dict[str, str]
    old_manifest: dict[str, Any]
    new_files: dict[str, str]
    new_manifest: dict[str, Any]


@pytest.fixture
def sets(tmp_path: Path) -> Sets:
    output, reference = tmp_path / "output", tmp_path / "reference"
    publish_statement(small_statement(), output)
    publish_statement(small_statement(base="50.00"), reference)
    old_manifest, new_manifest = read_published(output, PERIOD), read_published(reference, PERIOD)
    assert old_manifest is not None and new_manifest is not None
    assert old_manifest["totals"] != new_manifest["totals"], "the two sets must differ"
    return Sets(
        output,
        snapshot(output / PERIOD),
        old_manifest,
        snapshot(reference / PERIOD),
        new_manifest,
    )


def _kill_publish(root: Path, point: str, mode: str) -> None:
    """Publish the new set (``base="50.00"``) under ``root`` in a child killed at ``point``."""
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path]),
    }
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), point, mode],
        env=environment,
        capture_output=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()


def _visible_entries(root: Path) -> list[str]:
    """What a reader who skips dot-entries sees in the output root."""
    return sorted(path.name for path in root.iterdir() if not path.name.startswith("."))


def _leftover_kinds(root: Path) -> list[str]:
    """``.staging`` / ``.previous``: the kinds of hidden dirs a killed publisher left."""
    return sorted({name.split("-", 1)[0] for name in hidden_leftovers(root)})


@pytest.mark.parametrize(
    ("point", "mode", "visible", "read", "leftovers"),
    [
        pytest.param(
            "_publish_local#1",
            "exchange",
            "old",
            "old",
            [],
            id="rendered-before-touching-the-output",
        ),
        pytest.param("_copy_durably#3", "exchange", "old", "old", [".staging"], id="while-staging"),
        pytest.param("_exchange#1", "exchange", "old", "old", [".staging"], id="before-the-swap"),
        pytest.param(
            "_discard#1", "exchange", "new", "new", [".staging"], id="after-the-swap-before-cleanup"
        ),
        pytest.param(
            "rename#2",
            "two-renames",
            "none",
            "old",
            [".previous", ".staging"],
            id="between-the-two-renames",
        ),
        pytest.param(
            "_discard#1", "two-renames", "new", "new", [".previous"], id="fallback-before-cleanup"
        ),
    ],
)
def test_killed_publisher_never_leaves_a_mixed_month_and_a_rerun_completes(
    sets: Sets, point: str, mode: str, visible: str, read: str, leftovers: list[str]
) -> None:
    _kill_publish(sets.output, point, mode)

    month = sets.output / PERIOD
    files = {"old": sets.old_files, "new": sets.new_files, "none": None}[visible]
    assert (snapshot(month) if month.exists() else None) == files
    manifest = {"old": sets.old_manifest, "new": sets.new_manifest}[read]
    assert read_published(sets.output, PERIOD) == manifest
    assert _visible_entries(sets.output) == ([PERIOD] if files is not None else [])
    assert _leftover_kinds(sets.output) == leftovers

    publish_statement(small_statement(base="50.00"), sets.output)

    assert snapshot(month) == sets.new_files
    assert read_published(sets.output, PERIOD) == sets.new_manifest
    assert hidden_leftovers(sets.output) == []


def test_a_killed_first_publish_leaves_no_month_at_all(tmp_path: Path) -> None:
    """Nothing published before: killed mid-staging, readers see no month, never a partial one."""
    _kill_publish(tmp_path, "_copy_durably#3", "exchange")

    assert read_published(tmp_path, PERIOD) is None
    assert _visible_entries(tmp_path) == []
    assert _leftover_kinds(tmp_path) == [".staging"]

    publish_statement(small_statement(base="50.00"), tmp_path)
    assert read_published(tmp_path, PERIOD) is not None
    assert hidden_leftovers(tmp_path) == []


def test_failed_rerun_after_a_kill_between_renames_restores_the_previous_set(
    sets: Sets,
) -> None:
    _kill_publish(sets.output, "rename#2", "two-renames")

    with pytest.raises(StatementError):
        publish_statement(small_statement(("not a slug",)), sets.output)

    assert snapshot(sets.output / PERIOD) == sets.old_files
    assert read_published(sets.output, PERIOD) == sets.old_manifest
    assert hidden_leftovers(sets.output) == []
