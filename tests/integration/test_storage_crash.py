"""A publisher killed at each step of a local publish (``os._exit``: no cleanup runs).

After the kill a reader sees the previous complete set, the new complete set, or (only
between the two renames of the fallback swap) no month folder, never a mix, and
``read_published`` always reads a whole set (there, the one moved aside); the next
publish repairs whatever the dead one left and completes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vapi_chargeback.statements.validate import StatementError
from vapi_chargeback.storage import publish_statement, read_published

from support.storage import PERIOD, hidden_leftovers, small_statement, snapshot

KILLED = 9

CHILD = textwrap.dedent(
    """
    import os, sys
    from vapi_chargeback import storage
    from support.storage import small_statement

    root, point, exchange = sys.argv[1], sys.argv[2], sys.argv[3] == "exchange"
    name, _, count = point.partition("#")
    calls = {"n": 0}

    def dies_on_call(original):
        def wrapper(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == int(count):
                os._exit(9)
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


def _kill_publish(root: Path, point: str, mode: str) -> None:
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
    assert child.returncode == KILLED, child.stderr.decode()


@pytest.mark.parametrize(
    ("point", "mode", "visible"),
    [
        pytest.param("_copy_durably#3", "exchange", "old", id="while-staging"),
        pytest.param("_exchange#1", "exchange", "old", id="before-the-swap"),
        pytest.param("_discard#1", "exchange", "new", id="after-the-swap-before-cleanup"),
        pytest.param("rename#2", "two-renames", "none", id="between-the-two-renames"),
        pytest.param("_discard#1", "two-renames", "new", id="fallback-before-cleanup"),
    ],
)
def test_killed_publisher_never_leaves_a_mixed_month(
    tmp_path: Path, point: str, mode: str, visible: str
) -> None:
    publish_statement(small_statement(), tmp_path)
    old = snapshot(tmp_path / PERIOD)
    reference = tmp_path / "reference"
    publish_statement(small_statement(base="50.00"), reference)
    new = snapshot(reference / PERIOD)

    _kill_publish(tmp_path, point, mode)

    month = tmp_path / PERIOD
    seen = {"old": old, "new": new, "none": None}[visible]
    assert (snapshot(month) if month.exists() else None) == seen
    assert read_published(tmp_path, PERIOD) is not None
    publish_statement(small_statement(base="50.00"), tmp_path)
    assert snapshot(month) == new
    assert hidden_leftovers(tmp_path) == []


def test_failed_rerun_after_a_kill_between_renames_restores_the_previous_set(
    tmp_path: Path,
) -> None:
    publish_statement(small_statement(), tmp_path)
    old = snapshot(tmp_path / PERIOD)
    _kill_publish(tmp_path, "rename#2", "two-renames")

    with pytest.raises(StatementError):
        publish_statement(small_statement(("not a slug",)), tmp_path)

    assert snapshot(tmp_path / PERIOD) == old
    assert read_published(tmp_path, PERIOD) is not None
    assert hidden_leftovers(tmp_path) == []
