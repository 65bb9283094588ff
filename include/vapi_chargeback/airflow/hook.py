"""``VapiAnalyticsHook``: an Airflow connection in, a typed :class:`VapiAnalyticsClient` out.

The hook only translates; every behaviour (retries, batching, errors) lives in the
client, so it works the same inside and outside Airflow. Per the settings contract it
reads the connection's ``host`` (API base URL, default ``https://api.vapi.ai``; a host
without scheme gets ``https://``; a separate ``port``, as the URI form produces, is
added to a host that has none) and ``password`` (the API key), whatever the
``conn_type``. Client tunables may come from the connection's ``extra`` JSON —
``max_queries_per_request``, ``max_concurrency``, ``connect_timeout``,
``read_timeout``, ``max_retries``, ``backoff_base``, ``backoff_cap``,
``retry_after_cap``, ``deadline``, ``max_response_bytes`` — other extra keys are
ignored, so a reused ``http`` connection still works. Keyword arguments to the hook
override both.

The key is read only from the connection — so from wherever Airflow keeps connections:
``AIRFLOW_CONN_*``, the metadata database or a secrets backend — and is registered with
Airflow's secrets masker before any client exists, so a task log shows ``***`` wherever
it would appear. Airflow masks connection passwords itself when a task fetches them;
doing it here as well covers every other way a hook gets its connection.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from airflow.sdk import BaseHook, Connection
from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.sdk.log import mask_secret
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vapi_chargeback.airflow import provider
from vapi_chargeback.analytics.client import DEFAULT_BASE_URL, VapiAnalyticsClient
from vapi_chargeback.analytics.models import (
    DEFAULT_MAX_QUERIES_PER_REQUEST,
    AnalyticsOperation,
    AnalyticsQuery,
    TimeRange,
    field_path,
)
from vapi_chargeback.analytics.numbers import to_int
from vapi_chargeback.errors import PermanentError

TEST_QUERY_NAME = "connection test"
TEST_RETRIES = 1
TEST_DEADLINE = 30.0
"""Seconds: the UI's Test button should answer quickly, not retry for minutes."""


class VapiConnectionError(PermanentError, ValueError):
    """The Airflow connection cannot make a client; says which connection and which field."""


class ConnectionExtra(BaseModel):
    """Client tunables accepted from the connection's ``extra``; unknown keys are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    max_queries_per_request: int | None = Field(default=None, ge=1)
    max_concurrency: int | None = Field(default=None, ge=1)
    connect_timeout: float | None = Field(default=None, gt=0)
    read_timeout: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0)
    backoff_base: float | None = Field(default=None, ge=0)
    backoff_cap: float | None = Field(default=None, ge=0)
    retry_after_cap: float | None = Field(default=None, ge=0)
    deadline: float | None = Field(default=None, gt=0)
    max_response_bytes: int | None = Field(default=None, ge=1)


class VapiAnalyticsHook(BaseHook):
    """Builds a :class:`VapiAnalyticsClient` from the Airflow connection ``vapi_conn_id``.

    ``client_options`` go to the client as keyword arguments and win over the extra, e.g.
    ``VapiAnalyticsHook(max_concurrency=2)``.
    """

    conn_name_attr = "vapi_conn_id"
    default_conn_name = "vapi_default"
    conn_type = provider.CONNECTION_TYPE
    hook_name = provider.HOOK_NAME

    def __init__(self, vapi_conn_id: str = default_conn_name, **client_options: Any) -> None:
        super().__init__()
        self.vapi_conn_id = vapi_conn_id
        self.client_options = client_options

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The form: host is the API base URL, password the API key, the rest hidden."""
        return {
            "hidden_fields": list(provider.HIDDEN_FIELDS),
            "relabeling": dict(provider.RELABELING),
            "placeholders": dict(provider.PLACEHOLDERS),
        }

    def get_conn(self) -> VapiAnalyticsClient:
        """A new client for the connection; close it (or use ``with``) when done."""
        return self._client()

    def test_connection(self) -> tuple[bool, str]:
        """One cheap query (count of calls over the last day) with the connection's URL and key.

        Any failure becomes ``(False, message)``: the UI's Test button shows the message,
        and a missing connection or a bad setting is as much an answer as a refused key.
        """
        now = datetime.now(UTC).replace(microsecond=0)
        query = AnalyticsQuery(
            table="call",
            name=TEST_QUERY_NAME,
            time_range=TimeRange(start=now - timedelta(days=1), end=now),
            operations=[AnalyticsOperation(operation="count", column="id", alias="calls")],
        )
        try:
            with self._client(max_retries=TEST_RETRIES, deadline=TEST_DEADLINE) as client:
                result = client.query([query])[TEST_QUERY_NAME]
                url = client.base_url
            calls = sum(
                to_int(row.get("calls"), field=f"{TEST_QUERY_NAME}.result[{index}].calls") or 0
                for index, row in enumerate(result.result)
            )
        except Exception as error:
            return False, f"{type(error).__name__}: {error}"
        return True, f"Connected to {url}: {calls} calls in the last 24 hours."

    def max_queries_per_request(self) -> int:
        """The batch limit the client will enforce, so that the plan packs batches that fit."""
        extra = self._extra_options(self._connection().extra_dejson)
        limit = self.client_options.get("max_queries_per_request") or extra.get(
            "max_queries_per_request"
        )
        return int(limit or DEFAULT_MAX_QUERIES_PER_REQUEST)

    def _client(self, **overrides: Any) -> VapiAnalyticsClient:
        connection = self._connection()
        if not connection.password:
            raise VapiConnectionError(
                f"Airflow connection {self.vapi_conn_id!r} has no API key: put the Vapi org's "
                "private API key in its password field, e.g. AIRFLOW_CONN_VAPI_DEFAULT="
                '\'{"conn_type": "vapi", "host": "https://api.vapi.ai", "password": "<key>"}\''
            )
        mask_secret(connection.password, name="password")
        options = {
            **self._extra_options(connection.extra_dejson),
            **self.client_options,
            **overrides,
        }
        try:
            return VapiAnalyticsClient(
                base_url_from(connection.host, connection.port), connection.password, **options
            )
        except ValueError as error:
            raise VapiConnectionError(
                f"Airflow connection {self.vapi_conn_id!r}: {error}"
            ) from error

    def base_url(self) -> str:
        """The API base URL the client will call, for messages that send a person to check it."""
        connection = self._connection()
        return base_url_from(connection.host, connection.port)

    def _connection(self) -> Connection:
        try:
            return self.get_connection(self.vapi_conn_id)
        except AirflowNotFoundException:
            raise VapiConnectionError(
                f"no Airflow connection {self.vapi_conn_id!r}: define it with the API base URL"
                " as host and the Vapi org's private API key as password, e.g."
                " AIRFLOW_CONN_VAPI_DEFAULT="
                '\'{"conn_type": "vapi", "host": "https://api.vapi.ai", "password": "<key>"}\''
                " or in the Airflow UI (Admin → Connections)."
            ) from None

    def _extra_options(self, extra: dict[str, Any]) -> dict[str, Any]:
        try:
            tunables = ConnectionExtra.model_validate(extra)
        except ValidationError as error:
            problems = "; ".join(
                f"{field_path(tuple(item['loc']))}: {item['msg']}" for item in error.errors()
            )
            raise VapiConnectionError(
                f"Airflow connection {self.vapi_conn_id!r} has invalid client settings in its "
                f"extra ({problems}); fix or remove them."
            ) from None
        return tunables.model_dump(exclude_none=True)


def base_url_from(host: str | None, port: int | None = None) -> str:
    """The API base URL from a connection's host (and port, when the host names none)."""
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        host = f"https://{host}"
    url = httpx.URL(host)
    if port and url.port is None:
        url = url.copy_with(port=port)
    return str(url)
