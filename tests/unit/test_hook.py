"""The hook: connections from ``AIRFLOW_CONN_*`` (no database) to clients, the form, the test button.

Also checks that Airflow itself — the ProvidersManager of the API server and the task
runtime — registers the ``vapi`` connection type from the installed entry point.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from vapi_chargeback.airflow import provider
from vapi_chargeback.airflow.hook import VapiAnalyticsHook, VapiConnectionError, base_url_from
from vapi_chargeback.analytics.client import DEFAULT_BASE_URL

from support.scripted_server import RecordedRequest, Reply, ScriptedServer, analytics_results

KEY = "sk-hook-5d1e0c9a-key"


def connection_json(**fields: Any) -> str:
    return json.dumps({"conn_type": "vapi", **fields})


@pytest.mark.parametrize(
    ("env", "base_url"),
    [
        pytest.param(
            connection_json(host="https://api.vapi.ai", password=KEY), DEFAULT_BASE_URL, id="json"
        ),
        pytest.param(connection_json(password=KEY), DEFAULT_BASE_URL, id="json-no-host"),
        pytest.param(
            connection_json(host="", password=KEY), DEFAULT_BASE_URL, id="json-empty-host"
        ),
        pytest.param(
            connection_json(host="api.vapi.ai", password=KEY), DEFAULT_BASE_URL, id="json-bare-host"
        ),
        pytest.param(
            connection_json(host="http://127.0.0.1:8787", password=KEY),
            "http://127.0.0.1:8787",
            id="json-emulator",
        ),
        pytest.param(
            json.dumps(
                {
                    "conn_type": "http",
                    "host": "api.vapi.ai",
                    "login": "ignored",
                    "schema": "ignored",
                    "password": KEY,
                    "extra": {"headers": {"X": "1"}},
                }
            ),
            DEFAULT_BASE_URL,
            id="json-any-conn-type",
        ),
        pytest.param(f"vapi://:{KEY}@api.vapi.ai", DEFAULT_BASE_URL, id="uri"),
        pytest.param(f"vapi://:{KEY}@", DEFAULT_BASE_URL, id="uri-no-host"),
        pytest.param(
            f"vapi://http://:{KEY}@127.0.0.1:8787", "http://127.0.0.1:8787", id="uri-emulator"
        ),
    ],
)
def test_connection_from_env_var_gives_a_client(
    monkeypatch: pytest.MonkeyPatch, env: str, base_url: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VAPI_DEFAULT", env)
    with VapiAnalyticsHook().get_conn() as client:
        assert client.base_url == base_url
        assert client._api_key.get_secret_value() == KEY
        assert KEY not in repr(client)


def test_key_with_reserved_characters_survives_the_uri_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VAPI_ODD", "vapi://:a%2Fb%40c%3Ad@api.vapi.ai")
    with VapiAnalyticsHook("vapi_odd").get_conn() as client:
        assert client._api_key.get_secret_value() == "a/b@c:d"


def test_tunables_come_from_extra_and_keywords_win(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"max_concurrency": 2, "read_timeout": 5, "max_retries": "3", "headers": {"X": 1}}
    monkeypatch.setenv("AIRFLOW_CONN_VAPI_DEFAULT", connection_json(password=KEY, extra=extra))
    with VapiAnalyticsHook(max_retries=1).get_conn() as client:
        assert (client.max_concurrency, client.read_timeout, client.max_retries) == (2, 5.0, 1)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        pytest.param(
            connection_json(host="api.vapi.ai"), "'vapi_default' has no API key", id="no-password"
        ),
        pytest.param(
            connection_json(password=KEY, extra={"max_concurrency": 0}),
            "'vapi_default' has invalid client settings in its extra (max_concurrency:",
            id="bad-extra",
        ),
        pytest.param(
            connection_json(host="ftp://files.example", password=KEY),
            "'vapi_default': base_url 'ftp://files.example' is not an absolute http(s) URL",
            id="bad-scheme",
        ),
    ],
)
def test_unusable_connection_says_which_and_why(
    monkeypatch: pytest.MonkeyPatch, env: str, says: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VAPI_DEFAULT", env)
    with pytest.raises(VapiConnectionError) as caught:
        VapiAnalyticsHook().get_conn()
    assert says in str(caught.value)
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("host", "port", "base_url"),
    [
        (None, None, DEFAULT_BASE_URL),
        ("  ", None, DEFAULT_BASE_URL),
        ("api.vapi.ai", None, "https://api.vapi.ai"),
        ("api.vapi.ai", 8443, "https://api.vapi.ai:8443"),
        ("http://127.0.0.1", 8787, "http://127.0.0.1:8787"),
        ("http://127.0.0.1:8787", 9999, "http://127.0.0.1:8787"),
        ("https://proxy.example/vapi", None, "https://proxy.example/vapi"),
    ],
    ids=lambda value: str(value),
)
def test_base_url_from_host_and_port(host: str | None, port: int | None, base_url: str) -> None:
    assert base_url_from(host, port) == base_url


def test_identity_and_form_match_the_provider_info() -> None:
    info = provider.get_provider_info()
    (connection_type,) = info["connection-types"]
    behaviour = VapiAnalyticsHook.get_ui_field_behaviour()
    assert connection_type["connection-type"] == VapiAnalyticsHook.conn_type == "vapi"
    assert connection_type["hook-name"] == VapiAnalyticsHook.hook_name == "Vapi Analytics"
    assert connection_type["hook-class-name"] == (
        f"{VapiAnalyticsHook.__module__}.{VapiAnalyticsHook.__qualname__}"
    )
    assert VapiAnalyticsHook.default_conn_name == "vapi_default"
    assert getattr(VapiAnalyticsHook(), VapiAnalyticsHook.conn_name_attr) == "vapi_default"
    assert behaviour["relabeling"] == {"host": "API base URL", "password": "API key"}
    assert sorted(behaviour["hidden_fields"]) == ["extra", "login", "port", "schema"]
    declared = connection_type["ui-field-behaviour"]
    assert (declared["hidden-fields"], declared["relabeling"]) == (
        behaviour["hidden_fields"],
        behaviour["relabeling"],
    )
    assert provider.DEFAULT_BASE_URL == DEFAULT_BASE_URL


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    with ScriptedServer() as running:
        monkeypatch.setenv(
            "AIRFLOW_CONN_VAPI_DEFAULT", connection_json(host=running.url, password=KEY)
        )
        yield running


def test_test_connection_sends_one_cheap_query(server: ScriptedServer) -> None:
    def answer(request: RecordedRequest) -> Reply:
        return Reply(201, analytics_results(request, row=lambda query: {"calls": "12"}))

    server.play(answer)
    ok, message = VapiAnalyticsHook().test_connection()

    assert (ok, message) == (True, f"Connected to {server.url}: 12 calls in the last 24 hours.")
    (request,) = server.requests
    assert request.headers["authorization"] == f"Bearer {KEY}"
    (query,) = request.json()["queries"]
    assert query["operations"] == [{"operation": "count", "column": "id", "alias": "calls"}]
    assert "groupBy" not in query and query["table"] == "call"
    start = datetime.fromisoformat(query["timeRange"]["start"])
    end = datetime.fromisoformat(query["timeRange"]["end"])
    assert end - start == timedelta(days=1) and start.tzinfo is not None


@pytest.mark.parametrize(
    ("replies", "says"),
    [
        pytest.param([Reply(401, {"message": "Invalid Key"})], "AuthenticationError", id="refused"),
        pytest.param([Reply(503), Reply(503)], "ServerError", id="down"),
        pytest.param([Reply(200, "<html></html>")], "UnusableResponseError", id="not-the-api"),
    ],
)
def test_test_connection_reports_failure(
    server: ScriptedServer, replies: list[Reply], says: str
) -> None:
    server.play(*replies)
    ok, message = VapiAnalyticsHook(sleep=lambda seconds: None).test_connection()
    assert not ok
    assert message.startswith(says)
    assert len(server.requests) == len(replies)
    assert KEY not in message


def test_test_connection_reports_a_missing_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_VAPI_NOWHERE", raising=False)
    ok, message = VapiAnalyticsHook("vapi_nowhere").test_connection()
    assert not ok
    assert "vapi_nowhere" in message


def test_airflow_registers_the_vapi_connection_type() -> None:
    """Needs the project installed (``make install`` or ``uv pip install --no-deps -e .``)."""
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    runtime_hook = ProvidersManagerTaskRuntime().hooks["vapi"]
    assert runtime_hook is not None, "reinstall the project so its provider entry point is seen"
    assert runtime_hook.hook_class_name == provider.HOOK_CLASS_NAME
    assert runtime_hook.connection_id_attribute_name == "vapi_conn_id"
    assert runtime_hook.connection_testable

    manager = ProvidersManager()
    assert provider.PACKAGE_NAME in manager.providers
    assert manager.field_behaviours["vapi"]["relabeling"] == provider.RELABELING
    assert manager.field_behaviours["vapi"]["hidden_fields"] == provider.HIDDEN_FIELDS


@pytest.mark.parametrize(
    ("extra", "keywords", "expected"),
    [
        pytest.param({}, {}, 20, id="default"),
        pytest.param({"max_queries_per_request": 2}, {}, 2, id="from-extra"),
        pytest.param(
            {"max_queries_per_request": 2}, {"max_queries_per_request": 7}, 7, id="keyword-wins"
        ),
    ],
)
def test_batch_limit_for_the_plan_matches_the_client(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, int], keywords: dict[str, int], expected: int
) -> None:
    """The plan packs batches with the limit the client enforces, or every fetch would fail."""
    monkeypatch.setenv("AIRFLOW_CONN_VAPI_DEFAULT", connection_json(password=KEY, extra=extra))
    hook = VapiAnalyticsHook(**keywords)
    assert hook.max_queries_per_request() == expected
    with hook.get_conn() as client:
        assert client.max_queries_per_request == expected
