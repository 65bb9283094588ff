"""A reader racing a local republish gets one whole set, the old or the new, never nothing.

``read_published`` holds a descriptor of the month folder while it verifies the files;
a publish swaps that folder out and deletes it. Each test forces one interleaving
exactly: the reader is stopped at a named step of its read (a wrapped internal function)
while a complete republish — swap and deletion of the old set — runs, or the publisher is
stopped between the two renames of the fallback swap while a reader reads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vapi_chargeback import published, storage
from vapi_chargeback.storage import publish_statement, read_published

from support.storage import PERIOD, hidden_leftovers, small_statement

SWAPS = [
    pytest.param(True, id="renameat2-exchange"),
    pytest.param(False, id="two-renames"),
]
WAIT_SECONDS = 30.0


def published_sets(
    root: Path, use_exchange: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Publish the old set into ``root``; return the old and the new set's manifests."""
    if not use_exchange:
        monkeypatch.setattr(storage, "_exchange", lambda first, second: False)
    publish_statement(small_statement(("sales", "support", "legal")), root)
    reference = root.parent / "reference"
    publish_statement(small_statement(("sales", "support"), base="20.00"), reference)
    old, new = read_published(root, PERIOD), read_published(reference, PERIOD)
    assert old is not None and new is not None and old != new
    return old, new


def runs_first(action: Callable[[], None], original: Callable[..., Any]) -> Callable[..., Any]:
    """``original``, but the first call runs ``action`` before it."""
    calls = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not calls:
            calls.append(1)
            action()
        return original(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("use_exchange", SWAPS)
@pytest.mark.parametrize(
    "step",
    [
        pytest.param("_verified", id="after-opening-the-month-before-its-manifest"),
        pytest.param("_file_problems", id="after-the-manifest-before-the-first-file"),
    ],
)
def test_a_republish_during_a_read_gives_a_whole_set_never_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_exchange: bool, step: str
) -> None:
    root = tmp_path / "output"
    _, new = published_sets(root, use_exchange, monkeypatch)
    held = (root / PERIOD).stat()

    def republish() -> None:
        publish_statement(small_statement(("sales", "support"), base="20.00"), root)
        now = (root / PERIOD).stat()
        assert (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino), "the set was swapped"
        assert hidden_leftovers(root) == [], "and the set the reader holds was deleted"

    monkeypatch.setattr(published, step, runs_first(republish, getattr(published, step)))

    seen = read_published(root, PERIOD)

    assert seen is not None, "a reader saw 'not published' while a month existed"
    assert seen == new, "the set the reader held was deleted: it must read the one in place"
    assert hidden_leftovers(root) == []


@pytest.mark.parametrize(
    ("publish_ends", "expected"),
    [
        pytest.param(False, "old", id="read-completes-inside-the-gap"),
        pytest.param(True, "new", id="publish-completes-during-the-read"),
    ],
)
def test_a_read_between_the_two_renames_of_the_fallback_swap_gives_a_whole_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, publish_ends: bool, expected: str
) -> None:
    """Without renameat2 the month is absent between its two renames; a reader still gets a set."""
    root = tmp_path / "output"
    sets = dict(zip(("old", "new"), published_sets(root, False, monkeypatch), strict=True))
    in_gap, release = threading.Event(), threading.Event()
    rename = os.rename

    def rename_then_wait_in_the_gap(source: Any, target: Any) -> None:
        rename(source, target)
        if Path(target).name.startswith(f".previous-{PERIOD}-"):
            in_gap.set()
            assert release.wait(WAIT_SECONDS), "the test never let the publisher go on"

    monkeypatch.setattr(os, "rename", rename_then_wait_in_the_gap)
    errors: list[BaseException] = []

    def publish() -> None:
        try:
            publish_statement(small_statement(("sales", "support"), base="20.00"), root)
        except BaseException as error:
            errors.append(error)

    publisher = threading.Thread(target=publish)
    publisher.start()
    assert in_gap.wait(WAIT_SECONDS), "the publisher never reached the gap"
    assert not (root / PERIOD).exists(), "the month must be absent between the renames"

    def let_the_publish_finish() -> None:
        release.set()
        publisher.join(WAIT_SECONDS)

    if publish_ends:
        monkeypatch.setattr(
            published,
            "_file_problems",
            runs_first(let_the_publish_finish, published._file_problems),
        )
    try:
        seen = read_published(root, PERIOD)
    finally:
        let_the_publish_finish()

    assert errors == []
    assert seen is not None, "a reader saw 'not published' while a month existed"
    assert seen == sets[expected]
    assert read_published(root, PERIOD) == sets["new"]
    assert hidden_leftovers(root) == []
