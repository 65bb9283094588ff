"""Publishing a month to local storage: layout, verification, reruns and failures."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from upath import UPath

from vapi_chargeback import storage
from vapi_chargeback.statement import (
    CostCenterInfo,
    Statement,
)
from vapi_chargeback.statements import render
from vapi_chargeback.statements.validate import StatementError
from vapi_chargeback.storage import publish_statement, read_published

from support.storage import PERIOD, hidden_leftovers, small_statement, snapshot

ROOTS: list[Any] = [
    pytest.param(lambda root: str(root), id="plain-path-string"),
    pytest.param(lambda root: root, id="pathlib-path"),
    pytest.param(lambda root: root.as_uri(), id="file-url-string"),
    pytest.param(lambda root: UPath(root.as_uri()), id="upath-file-url"),
    pytest.param(lambda root: UPath(str(root)), id="upath-local-path"),
]


@pytest.mark.parametrize("as_root", ROOTS)
def test_publish_writes_the_set_and_a_reader_trusts_it(
    tmp_path: Path, as_root: Callable[[Path], Any]
) -> None:
    root = tmp_path / "output"

    result = publish_statement(small_statement(), as_root(root))

    month = root / PERIOD
    assert sorted(snapshot(month)) == [
        "chargeback-2026-10.csv",
        "chargeback-2026-10.xlsx",
        "cost-centers/sales-2026-10.xlsx",
        "cost-centers/support-2026-10.xlsx",
        "focus-2026-10.csv",
        "manifest.json",
    ]
    assert result.folder == month.as_uri()
    assert result.manifest_url == f"{month.as_uri()}/manifest.json"
    assert result.manifest_sha256 == snapshot(month)["manifest.json"]
    assert result.files == {
        name: digest for name, digest in snapshot(month).items() if name != "manifest.json"
    }
    manifest = read_published(as_root(root), PERIOD)
    assert manifest is not None
    assert manifest["totals"]["cost_usd"] == "23.00"
    assert hidden_leftovers(root) == []


def test_rerun_of_the_same_statement_is_byte_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_statement(small_statement(), tmp_path)
    before = snapshot(tmp_path / PERIOD)
    monkeypatch.setattr("time.time", lambda: 1_900_000_000.0)

    publish_statement(small_statement(), tmp_path)

    assert snapshot(tmp_path / PERIOD) == before


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames"])
def test_rerun_replaces_the_whole_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    if not exchange:
        monkeypatch.setattr(storage, "_exchange", lambda first, second: False)
    publish_statement(small_statement(("sales", "support", "legal")), tmp_path)

    publish_statement(small_statement(("sales", "support"), base="20.00"), tmp_path)

    assert "cost-centers/legal-2026-10.xlsx" not in snapshot(tmp_path / PERIOD)
    manifest = read_published(tmp_path, PERIOD)
    assert manifest is not None
    assert manifest["totals"]["cost_usd"] == "43.00"
    assert hidden_leftovers(tmp_path) == []


def test_failing_writer_leaves_the_previous_set_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_statement(small_statement(), tmp_path)
    before = snapshot(tmp_path / PERIOD)
    calls: list[str] = []
    original = render.write_cost_center_workbook

    def second_one_fails(statement: Statement, center: CostCenterInfo, *args: Any) -> int:
        calls.append(center.id)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(statement, center, *args)

    monkeypatch.setattr(render, "write_cost_center_workbook", second_one_fails)

    with pytest.raises(OSError, match="disk full"):
        publish_statement(small_statement(base="99.00"), tmp_path)

    assert snapshot(tmp_path / PERIOD) == before
    assert read_published(tmp_path, PERIOD) is not None
    assert hidden_leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "target",
    [pytest.param("_exchange", id="swap"), pytest.param("_copy_durably", id="staging-copy")],
)
def test_failure_while_staging_or_swapping_keeps_the_previous_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    publish_statement(small_statement(), tmp_path)
    before = snapshot(tmp_path / PERIOD)

    def fail(*args: Any) -> None:
        raise OSError("I/O error")

    monkeypatch.setattr(storage, target, fail)

    with pytest.raises(OSError, match="I/O error"):
        publish_statement(small_statement(base="99.00"), tmp_path)

    assert snapshot(tmp_path / PERIOD) == before
    assert hidden_leftovers(tmp_path) == []


def test_first_publish_that_fails_leaves_no_month(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any) -> int:
        raise RuntimeError("writer bug")

    monkeypatch.setattr(render, "write_statement_workbook", fail)

    with pytest.raises(RuntimeError, match="writer bug"):
        publish_statement(small_statement(), tmp_path)

    assert list(tmp_path.iterdir()) == []
    assert read_published(tmp_path, PERIOD) is None


def test_invalid_statement_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "output"
    statement = small_statement(("../escape",))

    with pytest.raises(
        StatementError, match=r"cost_centers\[0\]\.id: '\.\./escape' is not a safe slug"
    ):
        publish_statement(statement, root)

    assert not root.exists()
    assert not (tmp_path / "escape-2026-10.xlsx").exists()


def test_leftovers_of_an_interrupted_run_are_repaired(tmp_path: Path) -> None:
    publish_statement(small_statement(), tmp_path)
    old = snapshot(tmp_path / PERIOD)
    manifest = read_published(tmp_path, PERIOD)
    (tmp_path / PERIOD).rename(tmp_path / f".previous-{PERIOD}-0123")
    stale = tmp_path / f".staging-{PERIOD}-4567"
    (stale / "cost-centers").mkdir(parents=True)
    (stale / "chargeback-2026-10.csv").write_text("partial")

    assert manifest is not None
    assert read_published(tmp_path, PERIOD) == manifest, "the set moved aside still reads whole"
    with pytest.raises(StatementError):
        publish_statement(small_statement(("bad id",)), tmp_path)

    assert snapshot(tmp_path / PERIOD) == old
    assert hidden_leftovers(tmp_path) == []


def test_several_sets_moved_aside_and_no_month_read_as_not_published(tmp_path: Path) -> None:
    """Which one recovery restores is not the reader's guess to make."""
    publish_statement(small_statement(), tmp_path)
    (tmp_path / PERIOD).rename(tmp_path / f".previous-{PERIOD}-0123")
    publish_statement(small_statement(base="20.00"), tmp_path / "other")
    (tmp_path / "other" / PERIOD).rename(tmp_path / f".previous-{PERIOD}-4567")

    assert read_published(tmp_path, PERIOD) is None


def _tamper_file(month: Path) -> None:
    (month / "cost-centers" / "sales-2026-10.xlsx").write_bytes(b"changed")


def _remove_file(month: Path) -> None:
    (month / "chargeback-2026-10.csv").unlink()


def _edit_manifest(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def edit(month: Path) -> None:
        document = json.loads((month / "manifest.json").read_text())
        change(document)
        (month / "manifest.json").write_text(json.dumps(document))

    return edit


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_tamper_file, id="file-changed"),
        pytest.param(_remove_file, id="file-missing"),
        pytest.param(lambda month: (month / "manifest.json").unlink(), id="manifest-missing"),
        pytest.param(
            lambda month: (month / "manifest.json").write_text("{half"), id="manifest-not-json"
        ),
        pytest.param(
            _edit_manifest(lambda doc: doc.update(period="2026-09")), id="manifest-other-period"
        ),
        pytest.param(
            _edit_manifest(lambda doc: doc.update(format_version=99)), id="unknown-format"
        ),
        pytest.param(
            _edit_manifest(lambda doc: doc["files"].update({"../x": {"sha256": "0"}})),
            id="unsafe-path",
        ),
        pytest.param(_edit_manifest(lambda doc: doc.update(files={})), id="no-files"),
    ],
)
def test_reader_does_not_trust_a_damaged_month(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    publish_statement(small_statement(), tmp_path)

    damage(tmp_path / PERIOD)

    assert read_published(tmp_path, PERIOD) is None


def test_reader_refuses_a_malformed_period(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not YYYY-MM"):
        read_published(tmp_path, "../2026-10")


def test_concurrent_publishers_of_one_month_leave_one_whole_set(tmp_path: Path) -> None:
    statements = [small_statement(base=f"{10 + index}.00") for index in range(3)]
    errors: list[BaseException] = []

    def run(statement: Statement) -> None:
        try:
            publish_statement(statement, tmp_path)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(statement,)) for statement in statements]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    manifest = read_published(tmp_path, PERIOD)
    assert manifest is not None
    assert manifest["totals"]["cost_usd"] in {"23.00", "25.00", "27.00"}
    assert hidden_leftovers(tmp_path) == []


def test_a_non_directory_in_the_way_is_reported(tmp_path: Path) -> None:
    (tmp_path / PERIOD).write_text("not a folder")

    with pytest.raises(FileExistsError, match="is not a directory"):
        publish_statement(small_statement(), tmp_path)

    assert (tmp_path / PERIOD).read_text() == "not a folder"
    assert hidden_leftovers(tmp_path) == []
