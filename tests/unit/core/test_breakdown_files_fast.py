"""Breakdown files written faster, to the same bytes: tables encoded a column at a time
against ``json.dumps`` with the tagging hook (what ``dumps_tables`` was), and cost centers
shared with a forked worker process against one process writing them all."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from upath import UPath

from vapi_chargeback import breakdown_files
from vapi_chargeback.breakdown_files import (
    StoredBreakdowns,
    dumps_tables,
    encode_tables,
    forked_writer,
    loads_tables,
    store_breakdowns,
    tag_cell,
)
from vapi_chargeback.pipeline import make_folder
from vapi_chargeback.statement import Breakdown


def json_dumps_tables(tables: Sequence[Breakdown]) -> bytes:
    """``dumps_tables`` as it was: ``json`` with the tagging hook."""
    return json.dumps(encode_tables(tables), separators=(",", ":"), default=tag_cell).encode()


texts = st.text(max_size=8)
cells = st.one_of(
    texts,
    st.integers(min_value=-(10**20), max_value=10**20),
    st.booleans(),
    st.none(),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    st.decimals(),
    st.dates(),
    st.datetimes(),
    st.floats(),
)
"""Any cell, including kinds a table never holds (booleans, floats, moments)."""


def columns_of(kind: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(kind, min_size=0, max_size=6)


@st.composite
def tables(draw: st.DrawFn) -> Breakdown:
    """A table whose columns are each of one kind (as tables are) or mixed; now and then
    rows of different lengths, tuples, or no cells."""
    width = draw(st.integers(min_value=0, max_value=5))
    height = draw(st.integers(min_value=0, max_value=6))
    kinds = [
        draw(
            st.sampled_from(
                [
                    texts,
                    st.integers(0, 10**6),
                    st.decimals(allow_nan=False, allow_infinity=False, places=2),
                    st.dates(),
                    st.none(),
                    cells,
                ]
            )
        )
        for _ in range(width)
    ]
    rows: list[Any] = [[draw(kind) for kind in kinds] for _ in range(height)]
    if rows and draw(st.booleans()):
        shape = draw(st.sampled_from(["tuple", "ragged"]))
        rows[0] = tuple(rows[0]) if shape == "tuple" else [*rows[0], draw(cells)]
    return Breakdown(
        draw(texts),
        draw(texts),
        draw(st.lists(texts, max_size=4)),
        rows,
        draw(st.lists(cells, max_size=4)),
    )


@given(st.lists(tables(), max_size=3))
@settings(max_examples=400)
def test_tables_encode_to_the_bytes_json_writes(items: list[Breakdown]) -> None:
    assert dumps_tables(items) == json_dumps_tables(items)


def test_tables_of_every_kind_of_column_read_back() -> None:
    table = Breakdown(
        "daily",
        'Cost "by" day — é',
        ["day", "assistant_id", "calls", "cost_usd", "avg", "mixed"],
        [
            [date(2026, 10, 1), "a\u00e9\n", 3, Decimal("1.10"), None, Decimal("0.5")],
            [date(2026, 10, 2), "b", 0, Decimal("-0.00"), None, None],
        ],
        ["Total", "", 3, Decimal("1.10"), None, ""],
    )

    raw = dumps_tables([table])

    assert raw == json_dumps_tables([table])
    assert loads_tables(raw) == [table]


class CountingTables(Mapping[str, list[Breakdown]]):
    """Cost center ``c{i}`` → ``i % 3`` tables; records in which process each is made."""

    def __init__(self, centers: int, made: Path) -> None:
        self._centers = [f"c{i}" for i in range(centers)]
        self._made = made

    def __getitem__(self, center: str) -> list[Breakdown]:
        index = self._centers.index(center)
        with (self._made / f"{center}-{os.getpid()}").open("w"):
            pass
        return [
            Breakdown(f"d{j}", center, ["day", "cost"], [[date(2026, 10, 1), Decimal(index)]])
            for j in range(index % 3)
        ]

    def __iter__(self) -> Any:
        return iter(self._centers)

    def __len__(self) -> int:
        return len(self._centers)


def test_a_forked_worker_writes_the_same_files_as_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(breakdown_files, "_usable_cpus", lambda: 2)  # fork on any machine
    alone, shared, made = tmp_path / "alone", tmp_path / "shared", tmp_path / "made"
    made.mkdir()
    breakdowns = CountingTables(40, made)
    expected = store_breakdowns(UPath(alone), breakdowns, make_folder)

    work = UPath(shared)
    with forked_writer(work, make_folder, lambda n: CountingTables(n, made)) as writer:
        assert writer is not None, "a local work folder with two CPUs forks a worker"
        handed = writer.share(work, breakdowns, make_folder, 40)
        assert list(handed) == list(breakdowns)
        stored = store_breakdowns(work, handed, make_folder)

    assert isinstance(stored, StoredBreakdowns)
    assert stored.files == expected.files
    names = sorted(p.name for p in (alone / "breakdowns").iterdir())
    assert names == sorted(p.name for p in (shared / "breakdowns").iterdir())
    for name in names:
        assert (shared / "breakdowns" / name).read_bytes() == (
            alone / "breakdowns" / name
        ).read_bytes()
    by_center: dict[str, set[str]] = {}
    for center, pid in (p.name.split("-") for p in made.iterdir()):
        by_center.setdefault(center, set()).add(pid)
    assert all(len(pids) <= 2 for pids in by_center.values())  # alone, then one of the two


def test_a_failing_worker_fails_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(breakdown_files, "_usable_cpus", lambda: 2)  # fork on any machine

    def broken(_: object) -> Mapping[str, list[Breakdown]]:
        raise ValueError("no tables here")

    work = UPath(tmp_path)
    with forked_writer(work, make_folder, broken) as writer:
        assert writer is not None, "a local work folder with two CPUs forks a worker"
        handed = writer.share(work, CountingTables(10, tmp_path), make_folder, 10)
        with pytest.raises(ValueError, match="no tables here"):
            store_breakdowns(work, handed, make_folder)


def test_no_worker_on_object_storage_or_with_one_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with forked_writer(UPath("memory://work"), make_folder, dict) as writer:
        assert writer is None
    monkeypatch.setattr(breakdown_files, "_usable_cpus", lambda: 1)
    with forked_writer(UPath(tmp_path), make_folder, dict) as writer:
        assert writer is None
