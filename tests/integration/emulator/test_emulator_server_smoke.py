"""``run_emulator`` serves real HTTP on loopback, as other engineers' tests rely on."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from vapi_emulator.data import generate_calls_file
from vapi_emulator.records import MalformedRecordError
from vapi_emulator.server import run_emulator

KEY = "smoke-key"


@pytest.fixture(scope="module")
def calls_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("smoke") / "calls.parquet"
    generate_calls_file(path, month="2026-10", calls_per_month=2_000)
    return path


def test_serves_health_and_analytics_on_a_free_loopback_port(calls_file: Path) -> None:
    with run_emulator([calls_file], api_key=KEY) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{base_url}/health").json() == {"status": "ok", "calls": 2_000}
        response = httpx.post(
            f"{base_url}/analytics",
            headers={"Authorization": f"Bearer {KEY}"},
            json={
                "queries": [
                    {
                        "table": "call",
                        "name": "all",
                        "timeRange": {
                            "start": "2026-09-01T00:00:00Z",
                            "end": "2026-12-01T00:00:00Z",
                        },
                        "operations": [{"operation": "count", "column": "id"}],
                    }
                ]
            },
        )
    assert response.status_code == 200
    assert response.json()[0]["result"] == [{"countId": 2_000}]


def test_numbers_as_strings_quotes_aggregates(calls_file: Path) -> None:
    with run_emulator([calls_file], api_key=KEY, numbers_as_strings=True) as base_url:
        response = httpx.post(
            f"{base_url}/analytics",
            headers={"Authorization": f"Bearer {KEY}"},
            json={
                "queries": [
                    {
                        "table": "call",
                        "name": "all",
                        "timeRange": {
                            "start": "2026-09-01T00:00:00Z",
                            "end": "2026-12-01T00:00:00Z",
                        },
                        "operations": [{"operation": "count", "column": "id"}],
                    }
                ]
            },
        )
    assert response.json()[0]["result"] == [{"countId": "2000"}]


def test_malformed_file_raises_before_the_port_opens(tmp_path: Path) -> None:
    bad = tmp_path / "calls.jsonl"
    bad.write_text('{"id": "a", "createdAt": "2026-10-01T00:00:00.000Z"}\n{"id": "b"}\n')
    with (
        pytest.raises(MalformedRecordError, match=r"calls\.jsonl:2: createdAt is missing"),
        run_emulator([bad], api_key=KEY),
    ):
        pytest.fail("the server must not start over a malformed file")
