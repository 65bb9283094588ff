"""The API key comes only from the Airflow connection, is masked, and no error carries it.

``test_reliability_airflow.py`` searches every file of real DAG runs for the key; this
file pins down the mechanisms behind that result: where the hook takes the key from
(the connection — so also a secrets backend — and nowhere else), that the hook hands it
to Airflow's secrets masker, and that every kind of client error keeps it out of its
message, body and repr even when a server echoes the request's headers back.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from vapi_chargeback.airflow.hook import VapiAnalyticsHook, VapiConnectionError
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.errors import (
    AuthenticationError,
    DamagedResponseError,
    RateLimitError,
    ResponseError,
    ServerError,
    TransportError,
    UnexpectedStatusError,
    VapiAnalyticsError,
)
from vapi_chargeback.analytics.models import AnalyticsOperation, AnalyticsQuery

KEY = "sk-secret-91d2c7e0-never-print-me"
ECHO = f"upstream said: Authorization: Bearer {KEY}"


def test_the_hook_registers_the_key_with_airflows_masker(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.log import redact

    monkeypatch.setenv(
        "AIRFLOW_CONN_VAPI_MASKED", json.dumps({"conn_type": "vapi", "password": KEY})
    )
    with VapiAnalyticsHook("vapi_masked").get_conn() as client:
        assert KEY not in repr(client)
    assert KEY not in str(redact(f"a task printed {KEY} by mistake"))


def test_the_key_is_read_only_from_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Environment variables with key-like names are ignored: the connection has no password."""
    for name in ("VAPI_API_KEY", "VAPI_PRIVATE_KEY", "VAPI_EMULATOR_API_KEY", "API_KEY"):
        monkeypatch.setenv(name, KEY)
    monkeypatch.setenv(
        "AIRFLOW_CONN_VAPI_NOKEY", json.dumps({"conn_type": "vapi", "host": "api.vapi.ai"})
    )
    with pytest.raises(VapiConnectionError, match="has no API key") as caught:
        VapiAnalyticsHook("vapi_nokey").get_conn()
    assert KEY not in str(caught.value)


def test_a_secrets_backend_supplies_the_key_and_it_is_masked(tmp_path: Path) -> None:
    """Airflow's LocalFilesystemBackend stands in for Vault & co.; a fresh process reads its config."""
    connections = tmp_path / "connections.json"
    connections.write_text(
        json.dumps(
            {"vapi_vault": {"conn_type": "vapi", "host": "http://127.0.0.1:9", "password": KEY}}
        )
    )
    child = textwrap.dedent(
        """
        import sys
        from airflow.sdk.log import redact
        from vapi_chargeback.airflow.hook import VapiAnalyticsHook
        with VapiAnalyticsHook("vapi_vault").get_conn() as client:
            same = client._api_key.get_secret_value() == sys.argv[1]
        print(same, redact("leak " + sys.argv[1]))
        """
    )
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW_CONN_")
    }
    environment["AIRFLOW__SECRETS__BACKEND"] = (
        "airflow.secrets.local_filesystem.LocalFilesystemBackend"
    )
    environment["AIRFLOW__SECRETS__BACKEND_KWARGS"] = json.dumps(
        {"connections_file_path": str(connections)}
    )
    result = subprocess.run(
        [sys.executable, "-c", child, KEY],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True leak ***"


def _query() -> AnalyticsQuery:
    return AnalyticsQuery(
        table="call", name="q", operations=[AnalyticsOperation(operation="count", column="id")]
    )


def _raises(message: str) -> httpx.Response:
    raise httpx.ConnectError(message)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        pytest.param(lambda: httpx.Response(401, text=ECHO), AuthenticationError, id="401-echo"),
        pytest.param(lambda: httpx.Response(403, text=ECHO), AuthenticationError, id="403-echo"),
        pytest.param(lambda: httpx.Response(429, text=ECHO), RateLimitError, id="429-echo"),
        pytest.param(lambda: httpx.Response(503, text=ECHO), ServerError, id="503-echo"),
        pytest.param(lambda: httpx.Response(404, text=ECHO), UnexpectedStatusError, id="404-echo"),
        pytest.param(
            lambda: httpx.Response(200, text=f"<html>{ECHO}</html>"), ResponseError, id="html-echo"
        ),
        pytest.param(
            lambda: httpx.Response(200, text=f'[{{"name":"{ECHO}'),
            DamagedResponseError,
            id="damaged-echo",
        ),
        pytest.param(lambda: _raises(f"proxy refused {ECHO}"), TransportError, id="transport-echo"),
    ],
)
def test_no_error_carries_the_key_even_when_the_server_echoes_it(
    answer: Callable[[], httpx.Response],
    error: type[VapiAnalyticsError],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = VapiAnalyticsClient(
        "http://127.0.0.1:9",
        KEY,
        transport=httpx.MockTransport(lambda request: answer()),
        sleep=lambda seconds: None,
        max_retries=1,
    )
    with caplog.at_level(logging.DEBUG), client, pytest.raises(error) as caught:
        client.post_batch([_query()])

    raised = caught.value
    for text in (str(raised), repr(raised), raised.body or "", raised.request, caplog.text):
        assert KEY not in text
    assert "**********" in (raised.body or str(raised))
