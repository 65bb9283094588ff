"""``GET /assistant`` of the emulator: Vapi's parameters, limits, order and errors, and the
synthetic org's answer that ``generate`` writes beside its calls."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vapi_emulator.app import create_app
from vapi_emulator.assistants import (
    DELETED_PILOTS,
    PILOT_COST_CENTER,
    AssistantDirectory,
    AssistantsFileError,
    sidecar_path,
)
from vapi_emulator.cli import main
from vapi_emulator.data import demo_org, generate_calls_file
from vapi_emulator.engine import Engine
from vapi_emulator.server import run_app

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "calls_edge_cases.jsonl"
KEY = "assistant-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def assistant(number: int, created: str, updated: str | None = None) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-{number:012d}",
        "orgId": "org",
        "name": f"Assistant {number}",
        "createdAt": created,
        "updatedAt": updated or created,
        "model": {"provider": "openai", "model": "gpt-4o"},
    }


ASSISTANTS = [
    assistant(1, "2026-01-01T00:00:00.000Z", "2026-03-01T00:00:00.000Z"),
    assistant(2, "2026-02-01T00:00:00.000Z"),
    assistant(3, "2026-02-01T00:00:00.000Z"),
    assistant(4, "2026-03-01T12:00:00.500Z"),
    assistant(5, "2026-04-01T00:00:00.000Z", "2026-04-02T00:00:00.000Z"),
]


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    app = create_app(Engine([FIXTURE]), KEY, assistants=AssistantDirectory(ASSISTANTS))
    with run_app(app) as url, httpx.Client(base_url=url) as running:
        yield running


def listed(client: httpx.Client, **params: Any) -> list[int]:
    response = client.get("/assistant", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return [int(item["id"][-12:]) for item in response.json()]


def test_newest_first_with_the_default_limit_and_every_field_as_exported(
    client: httpx.Client,
) -> None:
    response = client.get("/assistant", headers=AUTH)
    assert response.headers["content-type"] == "application/json"
    assert response.json()[0] == ASSISTANTS[4]
    assert listed(client) == [5, 4, 3, 2, 1]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"limit": 2}, [5, 4], id="limit"),
        pytest.param({"limit": "2.0"}, [5, 4], id="limit-as-the-sdk-sends-a-float"),
        pytest.param({"limit": 0}, [], id="limit-zero"),
        pytest.param({"createdAtLt": "2026-02-01T00:00:00.000Z"}, [1], id="lt"),
        pytest.param({"createdAtLe": "2026-02-01T00:00:00.000Z"}, [3, 2, 1], id="le"),
        pytest.param({"createdAtGt": "2026-02-01T00:00:00Z"}, [5, 4], id="gt"),
        pytest.param({"createdAtGe": "2026-02-01T01:00:00+01:00"}, [5, 4, 3, 2], id="ge-offset"),
        pytest.param(
            {"createdAtGe": "2026-03-01T12:00:00.500Z", "createdAtLt": "2026-03-01T12:00:00.501Z"},
            [4],
            id="one-millisecond",
        ),
        pytest.param({"updatedAtGe": "2026-03-01T00:00:00Z"}, [5, 4, 1], id="updated-ge"),
        pytest.param({"updatedAtLt": "2026-02-01T00:00:00.001Z"}, [3, 2], id="updated-lt"),
        pytest.param({"createdAtLt": "2026-02-01T00:00:00"}, [1], id="no-zone-is-utc"),
    ],
)
def test_parameters_filter_like_vapi(
    client: httpx.Client, params: dict[str, Any], expected: list[int]
) -> None:
    assert listed(client, **params) == expected


@pytest.mark.parametrize(
    ("query", "messages"),
    [
        pytest.param("limit=1001", ["limit must not be greater than 1000"], id="limit-over-1000"),
        pytest.param("limit=-1", ["limit must not be less than 0"], id="negative-limit"),
        pytest.param("limit=ten", ["limit must be an integer number"], id="limit-text"),
        pytest.param("limit=2.5", ["limit must be an integer number"], id="limit-fraction"),
        pytest.param(
            "createdAtLt=yesterday",
            ["createdAtLt must be a valid ISO 8601 date string"],
            id="bad-date",
        ),
        pytest.param("cursor=abc", ["property cursor should not exist"], id="unknown-parameter"),
        pytest.param("limit=1&limit=2", ["limit must be given once"], id="repeated"),
        pytest.param(
            "limit=5000&updatedAtGt=x",
            [
                "limit must not be greater than 1000",
                "updatedAtGt must be a valid ISO 8601 date string",
            ],
            id="every-problem-at-once",
        ),
    ],
)
def test_bad_parameters_are_a_nest_400_naming_each_problem(
    client: httpx.Client, query: str, messages: list[str]
) -> None:
    response = client.get(f"/assistant?{query}", headers=AUTH)
    assert response.status_code == 400
    assert response.json() == {"statusCode": 400, "error": "Bad Request", "message": messages}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}], ids=["none", "wrong"])
def test_without_the_key_401_before_the_parameters_are_read(
    client: httpx.Client, headers: dict[str, str]
) -> None:
    response = client.get("/assistant?limit=5000", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"statusCode": 401, "message": "Unauthorized"}


def test_an_export_that_is_not_an_assistant_array_is_refused_naming_the_item(
    tmp_path: Path,
) -> None:
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"assistants": []}))
    with pytest.raises(AssistantsFileError, match="expected the array GET /assistant returns"):
        AssistantDirectory.from_file(export)
    export.write_text(json.dumps([ASSISTANTS[0], {"id": "x", "createdAt": "soon"}]))
    with pytest.raises(AssistantsFileError, match=r"item 1 \(x\) createdAt: 'soon'"):
        AssistantDirectory.from_file(export)
    assert main(["serve", "--calls", str(FIXTURE), "--assistants", str(export)]) == 2


def test_generate_writes_the_org_beside_the_calls_which_stay_as_they_were(tmp_path: Path) -> None:
    calls = tmp_path / "calls.parquet"
    generate_calls_file(calls, "2026-10", calls_per_month=500)
    again = tmp_path / "again" / "calls.parquet"
    again.parent.mkdir()
    generate_calls_file(again, "2026-10", calls_per_month=500)
    assert calls.read_bytes() == again.read_bytes()
    assert sidecar_path(calls).read_bytes() == sidecar_path(again).read_bytes()

    org = demo_org()
    answer = json.loads(sidecar_path(calls).read_text())
    assert [item["id"] for item in answer] == [a.id for a in org.assistants[:-DELETED_PILOTS]]
    assert all(0 < len(item["name"]) <= 40 for item in answer)
    tagged = {item["id"]: item["metadata"] for item in answer if "metadata" in item}
    mapped = {a.id: a for a in org.assistants if a.cost_center_id is not None}
    pilot = next(a.id for a in org.unmapped if a.id in {item["id"] for item in answer})
    assert tagged.pop(pilot) == {"costCenter": PILOT_COST_CENTER}
    assert 0 < len(tagged) < len(mapped), "some mapped assistants carry tags, not all"
    assert all(
        tags == {"costCenter": mapped[i].cost_center_id, "team": mapped[i].team}
        for i, tags in tagged.items()
    )
    first_call = "2026-09-30T22:00:00.000Z"
    assert all(item["createdAt"] < item["updatedAt"] < first_call for item in answer)

    app = create_app(Engine([calls]), KEY)
    with run_app(app) as url:
        served = httpx.get(f"{url}/assistant", params={"limit": 1000}, headers=AUTH).json()
    assert sorted(item["id"] for item in served) == sorted(item["id"] for item in answer)
    assert [item["createdAt"] for item in served] == sorted(
        (item["createdAt"] for item in answer), reverse=True
    )


def test_names_stay_unique_and_within_40_characters_in_a_large_org() -> None:
    names = [assistant.name for assistant in demo_org(assistants=2_000).assistants]
    assert len(set(names)) == len(names)
    assert max(map(len, names)) <= 40


def test_the_default_orgs_calls_are_those_of_the_first_wave(tmp_path: Path) -> None:
    """Names and the assistants file come from generators of their own: the calls the first
    wave's statements were computed from are byte for byte the same."""
    calls = tmp_path / "calls.jsonl"
    generate_calls_file(calls, "2026-10", calls_per_month=300)
    # costs[] (issue 14) is appended to each record; everything before it is the first wave's.
    lines = calls.read_text(encoding="utf-8").splitlines()
    first_wave = "".join(line.split(',"costs":', 1)[0] + "}\n" for line in lines)
    assert hashlib.sha256(first_wave.encode()).hexdigest() == FIRST_WAVE_300_CALLS_SHA256


FIRST_WAVE_300_CALLS_SHA256 = "6e35303fa7c85fd7f707c3bb9de9f41651e72ae6e62b463bca6fd3afcc766423"
"""Of the calls `generate` wrote before assistant names existed (commit 22b19d0)."""
