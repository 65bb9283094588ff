"""The on-disk call store answers byte for byte as the in-memory one, and is a safe cache.

Same calls, same requests — every analytics query of a broad set, ``GET /call`` pages and
the errors — must give identical bytes from ``--store memory`` and ``--store disk``. The
cache beside the calls is reused while they are unchanged, rebuilt when they change, and
never left half-built by a failed load.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vapi_chargeback import localrun
from vapi_emulator import engine as engine_module
from vapi_emulator.data import generate_calls_file
from vapi_emulator.engine import Engine
from vapi_emulator.records import MalformedRecordError
from vapi_emulator.server import run_emulator
from vapi_emulator.store import CACHE_SUFFIX, StoreError, StoreOptions, choose_kind

KEY = "store-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MONTH = {"start": "2026-10-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"}


def _query(name: str, operations: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    time_range = {**MONTH, **extra.pop("time_range", {})}
    return {
        "table": "call",
        "name": name,
        "timeRange": time_range,
        "operations": [{"operation": op, "column": column} for op, column in operations],
        **extra,
    }


BATCHES: list[list[dict[str, Any]]] = [
    [
        _query(
            "components",
            [("sum", "cost"), ("sum", "costBreakdown.llm"), ("count", "id"), ("sum", "duration")],
            groupBy=["assistantId"],
            time_range={"step": "day", "timezone": "Europe/Berlin"},
        ),
        _query(
            "cost-center",
            [("sum", "cost"), ("avg", "minutesUsed")],
            groupByVariableValue=[{"key": "costCenter"}, {"key": "customerTier"}],
        ),
        _query("reasons", [("count", "id"), ("max", "cost")], groupBy=["endedReason", "status"]),
        _query(
            "concurrency",
            [("max", "concurrency"), ("avg", "concurrency")],
            time_range={"step": "day"},
        ),
        _query("history", [("history", "cost")], groupBy=["type"]),
        _query(
            "hourly",
            [("count", "id")],
            time_range={"step": "hour", "timezone": "Australia/Lord_Howe"},
        ),
        _query("ids", [("min", "id"), ("max", "id")], groupBy=["analysis.successEvaluation"]),
    ],
    [_query("too-large", [("count", "id")], time_range={"step": "second"})],
]
CALL_PAGES = [
    {"limit": "1000"},
    {"createdAtGe": "2026-10-10T00:00:00Z", "createdAtLt": "2026-10-11T00:00:00Z", "limit": "50"},
]


@pytest.fixture(scope="module")
def calls_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "calls.parquet"
    generate_calls_file(path, month="2026-10", calls_per_month=30_000, assistants=40)
    return path


def _answers(base_url: str) -> list[bytes]:
    answers = []
    with httpx.Client(base_url=base_url, headers=AUTH, timeout=120) as client:
        for queries in BATCHES:
            response = client.post("/analytics", json={"queries": queries})
            answers.append(f"{response.status_code} ".encode() + response.content)
        for params in CALL_PAGES:
            response = client.get("/call", params=params)
            answers.append(f"{response.status_code} ".encode() + response.content)
    return answers


def test_disk_and_memory_answer_the_same_bytes(
    calls_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "MAX_RESULT_ROWS", 20_000)
    with run_emulator([calls_file], KEY, store=StoreOptions("memory")) as url:
        in_memory = _answers(url)
    cache = tmp_path / "calls.store.duckdb"
    with run_emulator([calls_file], KEY, store=StoreOptions("disk", cache)) as url:
        on_disk = _answers(url)
    with run_emulator([calls_file], KEY, store=StoreOptions("disk", cache, "256MB", 1)) as url:
        reused = _answers(url)
    assert in_memory[0].startswith(b"200 [") and in_memory[1].startswith(b"400 ")
    assert on_disk == in_memory
    assert reused == in_memory


def test_the_cache_is_reused_while_the_calls_are_unchanged(tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    generate_calls_file(calls, month="2026-10", calls_per_month=500, assistants=12)
    first = Engine([calls], StoreOptions("disk"))
    assert first.load() == 500
    first.close()
    cache = calls.with_name(calls.name + CACHE_SUFFIX)
    assert first.store is not None and first.store.path == cache and not first.store.cached
    second = Engine([calls], StoreOptions("disk"))
    assert second.load() == 500
    second.close()
    assert second.store is not None and second.store.cached
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ["calls.jsonl", "calls.assistants.json", cache.name]
    ), "no partial file or spill folder is left behind"


def test_the_cache_is_rebuilt_when_the_calls_change(tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    calls.write_text('{"id": "a", "createdAt": "2026-10-01T00:00:00.000Z", "cost": 1}\n')
    engine = Engine([calls], StoreOptions("disk"))
    engine.load()
    engine.close()
    calls.write_text(
        '{"id": "a", "createdAt": "2026-10-01T00:00:00.000Z", "cost": 1}\n'
        '{"id": "b", "createdAt": "2026-10-01T00:00:01.000Z", "cost": 2}\n'
    )
    stat = calls.stat()
    os.utime(calls, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    changed = Engine([calls], StoreOptions("disk"))
    assert changed.load() == 2
    changed.close()
    assert changed.store is not None and not changed.store.cached


def test_a_malformed_file_leaves_no_cache(tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    calls.write_text('{"id": "a", "createdAt": "2026-10-01T00:00:00.000Z"}\n{"id": "b"}\n')
    with pytest.raises(MalformedRecordError, match=r"calls\.jsonl:2: createdAt is missing"):
        Engine([calls], StoreOptions("disk")).load()
    assert [path.name for path in tmp_path.iterdir()] == ["calls.jsonl"]


def test_auto_keeps_small_files_in_memory_and_large_ones_on_disk(calls_file: Path) -> None:
    assert choose_kind(StoreOptions("auto"), [calls_file]) == "memory"
    assert choose_kind(StoreOptions("auto", threshold_calls=30_000), [calls_file]) == "disk"
    assert choose_kind(StoreOptions("memory", threshold_calls=1), [calls_file]) == "memory"


@pytest.fixture
def served_twice(calls_file: Path, tmp_path: Path) -> Iterator[tuple[str, str]]:
    cache = tmp_path / "shared.duckdb"
    store = StoreOptions("disk", cache)
    with (
        run_emulator([calls_file], KEY, store=store) as first,
        run_emulator([calls_file], KEY, store=store) as second,
    ):
        yield first, second


def test_two_servers_share_one_cache_read_only(served_twice: tuple[str, str]) -> None:
    first, second = served_twice
    assert _answers(first) == _answers(second)


def test_serve_builds_the_cache_once_then_reuses_it(calls_file: Path, tmp_path: Path) -> None:
    cache = tmp_path / "served.duckdb"
    options = ["--store", "disk", "--store-path", str(cache), "--memory-limit", "256MB"]
    logs = []
    for start in ("first", "second"):
        log = tmp_path / f"{start}.log"
        with localrun.emulator_process([calls_file], KEY, log=log, extra_args=options) as server:
            assert httpx.get(f"{server.url}/health").json()["calls"] == 30_000
        logs.append(log.read_text())
    assert f"(stored on disk in {cache})" in logs[0]
    assert f"(reused on disk in {cache})" in logs[1]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "first.log",
        "second.log",
        "served.duckdb",
    ], "the spill folder goes when the server stops"


def test_too_small_a_memory_limit_fails_the_build_clearly(tmp_path: Path) -> None:
    calls = tmp_path / "calls.parquet"
    generate_calls_file(calls, month="2026-10", calls_per_month=300_000, assistants=50)
    tight = StoreOptions("disk", memory_limit="30MB", threads=1)
    with pytest.raises(StoreError, match=r"out of memory while loading the calls .*--memory-limit"):
        Engine([calls], tight).load()
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "calls.assistants.json",
        "calls.parquet",
    ]
