"""An in-memory ``GET /call`` for client tests: Vapi's filters and limit, pages in random order.

The real API promises no order within a page, so this one shuffles every page (seeded),
and records every request, so a test asserts on what the listing asked as well as on
what it counted. Calls can be added while a listing runs (``on_request``), to script a
call appearing at a window's end mid-walk.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BOUNDS: dict[str, Callable[[int, int], bool]] = {
    "Gt": lambda value, bound: value > bound,
    "Ge": lambda value, bound: value >= bound,
    "Lt": lambda value, bound: value < bound,
    "Le": lambda value, bound: value <= bound,
}


def iso(ms: int) -> str:
    moment = EPOCH + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@functools.lru_cache(maxsize=65_536)
def ms_of(text: str) -> int:
    return (datetime.fromisoformat(text.replace("Z", "+00:00")) - EPOCH) // timedelta(
        milliseconds=1
    )


def call(
    number: int,
    created_ms: int,
    updated_ms: int | None = None,
    *,
    assistant: str | None = "asst-1",
    cost: str = "0.10",
) -> dict[str, Any]:
    """A Call as the API sends it, with the fields the recount reads."""
    return {
        "id": f"00000000-0000-4000-8000-{number:012d}",
        "orgId": "org",
        "assistantId": assistant,
        "createdAt": iso(created_ms),
        "updatedAt": iso(created_ms + 1000 if updated_ms is None else updated_ms),
        "startedAt": iso(created_ms + 100),
        "endedAt": iso(created_ms + 60_100),
        "cost": float(cost),
        "costBreakdown": {"llm": float(cost), "total": float(cost)},
        "costs": [{"type": "model", "cost": float(cost)}],
    }


@dataclass
class FakeCallsApi:
    """``GET /call`` over ``calls``; ``on_request(api, n)`` runs before the n-th (0-based) answer."""

    calls: list[dict[str, Any]]
    seed: int = 0
    on_request: Callable[[FakeCallsApi, int], None] | None = None
    requests: list[dict[str, str]] = field(default_factory=list)

    def answer(self, params: dict[str, str]) -> list[dict[str, Any]]:
        if self.on_request:
            self.on_request(self, len(self.requests))
        self.requests.append(params)
        limit = int(params.get("limit", "100"))
        chosen = [item for item in self.calls if self.matches(item, params)]
        random.Random(f"{self.seed}:{len(self.requests)}").shuffle(chosen)
        return chosen[:limit]

    def body(self, params: dict[str, str]) -> bytes:
        return json.dumps(self.answer(params)).encode()

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            params = dict(parse_qsl(urlsplit(str(request.url)).query))
            return httpx.Response(200, content=self.body(params))

        return httpx.MockTransport(handle)

    @staticmethod
    def matches(item: dict[str, Any], params: dict[str, str]) -> bool:
        for name, value in params.items():
            if name in ("id", "assistantId") and item.get(name) != value:
                return False
            for field_name in ("createdAt", "updatedAt"):
                if name.startswith(field_name):
                    compare = _BOUNDS[name[len(field_name) :]]
                    if not compare(ms_of(item[field_name]), ms_of(value)):
                        return False
        return True
