"""Emulator fidelity found by probing it against the spec (issue 20), each pinned here.

Variable values keep their JSON text; Unix epochs are refused as ``timeRange`` bounds;
instants are echoed with milliseconds; ``/analytics/`` is ``/analytics``; compressed
bodies are inflated (and bounded); ``vapi-emulator serve`` on a busy port fails cleanly.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vapi_emulator.app import MAX_BODY_BYTES
from vapi_emulator.server import run_emulator

KEY = "fidelity-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
VARIABLES_TEXT = (
    '{"n":1,"f":1.10,"e":1e5,"big":123456789012345678901234567890,'
    '"o":{"n":1,"f":2.50,"l":[1,-0.5]},"a":[1,2.0,"x"],"s":"x","q":"1","b":true,"z":null}'
)
DAY = {"start": "2026-10-05T00:00:00Z", "end": "2026-10-06T00:00:00Z"}


def _count(time_range: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "table": "call",
        "name": "q",
        "timeRange": time_range,
        "operations": [{"operation": "count", "column": "id"}],
        **extra,
    }


@pytest.fixture(scope="module")
def calls_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fidelity") / "calls.jsonl"
    lines = [
        '{"id":"c1","createdAt":"2026-10-05T09:00:00.000Z","cost":1,'
        f'"assistantOverrides":{{"variableValues":{VARIABLES_TEXT}}}}}',
        '{"id":"c2","createdAt":"2026-10-05T10:00:00.000Z","cost":2}',
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def base_url(calls_file: Path) -> Iterator[str]:
    with run_emulator([calls_file], api_key=KEY) as url:
        yield url


def _post(base_url: str, body: Any, path: str = "/analytics", **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{base_url}{path}", headers=AUTH, json=body, **kwargs)


def test_variable_values_group_by_their_exact_json_text(base_url: str) -> None:
    keys = ["n", "f", "e", "big", "o", "a", "s", "q", "b", "z"]
    query = _count(DAY, groupByVariableValue=[{"key": key} for key in keys])
    (first, _) = _post(base_url, {"queries": [query]}).json()[0]["result"]
    assert {key: first[key] for key in keys} == {
        "n": "1",
        "f": "1.10",
        "e": "1e5",
        "big": "123456789012345678901234567890",
        "o": '{"n":1,"f":2.50,"l":[1,-0.5]}',
        "a": '[1,2.0,"x"]',
        "s": "x",
        "q": "1",
        "b": "true",
        "z": None,
    }


def test_get_call_serves_variable_numbers_as_numbers(base_url: str) -> None:
    (call,) = httpx.get(f"{base_url}/call", headers=AUTH, params={"id": "c1"}).json()
    variables = call["assistantOverrides"]["variableValues"]
    assert variables["n"] == 1
    assert variables["o"]["n"] == 1
    assert variables["a"][:2] == [1, 2.0]
    assert variables["q"] == "1"


@pytest.mark.parametrize("epoch", [1_791_187_200, 1_791_187_200.5, "1791187200", "-5"], ids=str)
@pytest.mark.parametrize("bound", ["start", "end"])
def test_unix_epochs_are_refused_like_every_validation_error(
    base_url: str, bound: str, epoch: object
) -> None:
    time_range = {**DAY, bound: epoch}
    response = _post(base_url, {"queries": [_count(time_range)]})
    assert response.status_code == 400
    body = response.json()
    assert body["statusCode"] == 400 and body["error"] == "Bad Request"
    (message,) = body["message"]
    assert message.startswith(f"queries[0].timeRange.{bound}: must be an ISO-8601 date-time")


def test_an_epoch_is_listed_with_the_other_problems_of_the_body(base_url: str) -> None:
    epoch = _count({**DAY, "start": 0}, table="calls")
    zoneless = _count({**DAY, "end": "2026-10-06T00:00:00"})
    messages = _post(base_url, {"queries": [epoch, zoneless]}).json()["message"]
    assert len(messages) == 3, messages
    assert messages[0].startswith("queries[0].table: Input should be")
    assert messages[1].startswith("queries[1].timeRange.end: Input should have timezone info")
    assert messages[2].startswith("queries[0].timeRange.start: must be an ISO-8601")


def test_a_sub_millisecond_start_is_cut_to_milliseconds_like_a_javascript_date(
    base_url: str,
) -> None:
    time_range = {"start": "2026-10-05T09:00:00.000999Z", "end": "2026-10-05T09:30:00.5006Z"}
    (answer,) = _post(base_url, {"queries": [_count(time_range)]}).json()
    assert answer["timeRange"]["start"] == "2026-10-05T09:00:00.000Z"
    assert answer["timeRange"]["end"] == "2026-10-05T09:30:00.500Z"
    assert answer["result"] == [{"countId": 1}], "c1 at 09:00:00.000 is inside [start, end)"


def test_a_trailing_slash_is_answered_directly(base_url: str) -> None:
    body = {"queries": [_count(DAY)]}
    plain = _post(base_url, body)
    slashed = _post(base_url, body, path="/analytics/", follow_redirects=False)
    assert slashed.status_code == 200
    assert "location" not in slashed.headers
    assert slashed.content == plain.content


def _raw_post(base_url: str, content: bytes, encoding: str) -> httpx.Response:
    headers = {**AUTH, "Content-Type": "application/json", "Content-Encoding": encoding}
    return httpx.post(f"{base_url}/analytics", headers=headers, content=content)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_body_is_inflated(base_url: str, encoding: str) -> None:
    text = json.dumps({"queries": [_count(DAY)]}).encode()
    packed = gzip.compress(text) if encoding == "gzip" else zlib.compress(text)
    response = _raw_post(base_url, packed, encoding)
    assert response.status_code == 200
    assert response.content == _post(base_url, {"queries": [_count(DAY)]}).content


def test_a_zip_bomb_is_refused_past_the_limit(base_url: str) -> None:
    bomb = gzip.compress(b" " * (MAX_BODY_BYTES * 20))
    assert len(bomb) < MAX_BODY_BYTES // 40, "small on the wire, 20x the limit inflated"
    response = _raw_post(base_url, bomb, "gzip")
    assert response.status_code == 413
    assert "inflates to more than" in response.json()["message"]


@pytest.mark.parametrize(
    ("content", "encoding", "status"),
    [
        (b"not gzip at all", "gzip", 400),
        (gzip.compress(b'{"queries": []}')[:-6], "gzip", 400),
        (b"{}", "br", 415),
    ],
    ids=["corrupt", "truncated", "brotli"],
)
def test_bodies_that_do_not_inflate_are_refused(
    base_url: str, content: bytes, encoding: str, status: int
) -> None:
    response = _raw_post(base_url, content, encoding)
    assert response.status_code == status
    assert response.json()["statusCode"] == status


def test_serve_on_a_busy_port_fails_in_one_line_before_saying_serving(calls_file: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "vapi_emulator.cli",
                "serve",
                "--calls",
                str(calls_file),
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
    assert completed.returncode != 0
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith(f"vapi-emulator: error: cannot listen on 127.0.0.1:{port}")
    assert "another --port" in lines[0]
    assert "serving" not in completed.stderr + completed.stdout
