"""``list_assistants``: every assistant once, whatever the page size, the order within pages
or how many were created in one millisecond; the client's retries and typed errors.

The fake API filters with the emulator's own ``GET /assistant`` code and then shuffles each
page, so nothing may rely on the order Vapi happens to send.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from vapi_chargeback.analytics.assistants import MAX_LIMIT, list_assistants
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.errors import AuthenticationError, UnusableResponseError
from vapi_emulator.assistants import AssistantDirectory, parse_list_query

KEY = "listing-key"
START = datetime(2026, 1, 1, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def made(number: int, created: datetime, updated: datetime | None = None) -> dict[str, Any]:
    return {
        "id": f"a{number:05d}",
        "name": f"Assistant {number}",
        "createdAt": iso(created),
        "updatedAt": iso(updated or created),
        "voice": {"provider": "11labs"},
        "metadata": {"costCenter": f"cc-{number % 3}"},
    }


class FakeApi:
    """``GET /assistant`` over ``assistants``, pages shuffled; records every request."""

    def __init__(self, assistants: list[dict[str, Any]], seed: int = 1) -> None:
        self.directory = AssistantDirectory(assistants)
        self.shuffle = random.Random(seed).shuffle
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.url.path == "/assistant"
        assert request.headers["authorization"] == f"Bearer {KEY}"
        page = self.directory.select(parse_list_query(request.url.params.multi_items()))
        self.shuffle(page)
        return httpx.Response(200, json=page)


def client_for(answer: Callable[[httpx.Request], httpx.Response]) -> VapiAnalyticsClient:
    return VapiAnalyticsClient(
        "http://vapi.test",
        KEY,
        transport=httpx.MockTransport(answer),
        sleep=lambda seconds: None,
        max_retries=2,
    )


def ids(assistants: list[dict[str, Any]]) -> list[str]:
    return sorted(item["id"] for item in assistants)


def test_a_large_org_is_listed_whole_in_pages_of_the_api_limit() -> None:
    org = [made(n, START + timedelta(minutes=n)) for n in range(2_345)]
    api = FakeApi(org)
    with client_for(api) as client:
        listing = list_assistants(client)
    assert [item.id for item in listing.assistants] == ids(org)
    assert listing.assistants[7].name == "Assistant 7"
    assert listing.assistants[7].created_at == START + timedelta(minutes=7)
    assert listing.assistants[7].metadata == {"costCenter": "cc-1"}, "metadata is kept"
    assert all(request.url.params["limit"] == str(MAX_LIMIT) for request in api.requests)
    # Three pages of createdAtLt windows, each full one followed by its oldest millisecond.
    assert listing.requests == len(api.requests) == 5


def test_more_than_a_page_in_one_millisecond_are_each_listed_once() -> None:
    """Hand-made: seven assistants share one millisecond and the page holds three. Paging
    on by ``createdAtLt`` alone would skip those of that millisecond not on the page."""
    same = START + timedelta(days=3, microseconds=250_000)
    org = [
        *(made(n, START + timedelta(days=n)) for n in range(1, 6)),
        *(made(100 + n, same) for n in range(7)),
        *(made(200 + n, START - timedelta(days=n)) for n in range(1, 4)),
    ]
    api = FakeApi(org, seed=4)
    with client_for(api) as client:
        listing = list_assistants(client, limit=3)
    listed = [item.id for item in listing.assistants]
    assert listed == ids(org)
    assert len(listed) == len(set(listed)) == 15
    windows = [dict(request.url.params) for request in api.requests]
    assert {
        "limit": "1000",
        "createdAtGe": iso(same),
        "createdAtLt": iso(same + timedelta(milliseconds=1)),
    } in windows


def test_over_a_thousand_in_one_millisecond_are_split_by_updated_at() -> None:
    """A bulk import: 1,500 assistants created in one millisecond, updated at different times."""
    org = [made(n, START, START + timedelta(seconds=n)) for n in range(1_500)]
    org.append(made(9_999, START - timedelta(days=1)))
    api = FakeApi(org)
    with client_for(api) as client:
        listing = list_assistants(client)
    assert [item.id for item in listing.assistants] == ids(org)
    assert any("updatedAtLt" in request.url.params for request in api.requests)
    assert len(api.requests) < 200


def test_over_a_thousand_with_both_stamps_equal_cannot_be_listed_and_says_so() -> None:
    org = [made(n, START) for n in range(1_001)]
    with client_for(FakeApi(org)) as client, pytest.raises(UnusableResponseError) as raised:
        list_assistants(client)
    assert "over 1000 assistants were created at 2026-01-01T00:00:00.000Z" in str(raised.value)


def test_a_server_that_ignores_the_window_is_refused_instead_of_paged_forever() -> None:
    page = [made(n, START + timedelta(minutes=n)) for n in range(3)]
    with (
        client_for(lambda request: httpx.Response(200, json=page)) as client,
        pytest.raises(UnusableResponseError, match="ignores the window"),
    ):
        list_assistants(client, limit=3)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param({"assistants": []}, "Input should be a valid list", id="object"),
        pytest.param([{"name": "no id"}], "0.id: Field required", id="no-id"),
        pytest.param([{"id": "a", "createdAt": "2026-01-01T00:00:00"}], "timezone", id="naive"),
    ],
)
def test_a_body_that_is_not_a_list_of_assistants_is_refused(body: Any, message: str) -> None:
    with (
        client_for(lambda request: httpx.Response(200, json=body)) as client,
        pytest.raises(UnusableResponseError, match=message),
    ):
        list_assistants(client)


def test_pages_are_retried_like_analytics_and_a_refused_key_is_typed() -> None:
    api = FakeApi([made(1, START)])
    answers = iter([httpx.Response(503), httpx.Response(429, headers={"Retry-After": "0"})])

    def flaky(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or api(request)

    with client_for(flaky) as client:
        listing = list_assistants(client)
    assert [item.id for item in listing.assistants] == ["a00001"]
    assert listing.requests == 3

    refused = httpx.Response(401, text=json.dumps({"statusCode": 401, "message": "Unauthorized"}))
    with client_for(lambda request: refused) as client, pytest.raises(AuthenticationError):
        list_assistants(client)


def test_the_page_size_is_the_apis() -> None:
    with client_for(FakeApi([])) as client:
        for limit in (0, MAX_LIMIT + 1):
            with pytest.raises(ValueError, match="out of range"):
                list_assistants(client, limit=limit)
