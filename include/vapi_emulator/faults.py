"""Deterministic fault injection and request counters for ``vapi-emulator serve``.

The client's retries and the pipeline's all-or-nothing publishing are only proven by
failing on purpose, and a failure a test cannot reproduce proves little. So faults are
not drawn from a shared random stream (whose order would depend on thread timing) but
decided per request from ``sha256(seed, n, body)``, where ``n`` counts earlier requests
with the same body: the same client sending the same questions meets the same faults in
every run, however its requests interleave.

``--faults rate=0.3,kinds=429,503,timeout,reset,slow,garbage --fault-seed 7`` injects:

- ``429``: ``Too Many Requests`` with ``Retry-After: <retry_after>`` seconds;
- ``503``: ``Service Unavailable`` (no ``Retry-After``, so clients back off on their own);
- ``timeout``: holds the request ``hang`` seconds before answering normally; a client
  with a shorter read timeout gives up first (and the work is skipped once it has gone);
- ``reset``: headers and part of a body, then the connection is closed mid-response;
- ``slow``: answers normally after ``delay`` seconds (a retry is not needed);
- ``garbage``: a ``200`` whose JSON body is cut short, as a dropped upstream connection
  behind a proxy produces. Never a well-formed body with wrong numbers: a fault must be
  detectable, or it would be a wrong statement rather than a fault.

After ``max_streak`` faults in a row on the same body the next attempt passes, so a
client with at least that many retries always finishes: these runs test recovery, not luck.
Only ``POST /analytics`` and ``GET /call`` are affected (a ``GET`` is told apart by its
query string where a ``POST`` is by its body). Every request is counted; ``GET /_stats`` returns
the counters (requests by route, responses by status, faults by kind) as JSON and needs
no key, since it carries no data.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FAULT_KINDS = ("429", "503", "timeout", "reset", "slow", "garbage")
FAULTED_ROUTES = frozenset({("POST", "/analytics"), ("GET", "/call")})
STATS_PATH = "/_stats"
KNOWN_PATHS = frozenset(
    {"/analytics", "/call", "/assistant", "/_drift", "/health", STATS_PATH, "/openapi.json"}
)
"""Paths counted under their own name; anything else is counted as ``(other)`` so that
random URLs cannot grow the counters without bound."""
DROPPED = "dropped"
"""Responses key for requests that got no complete answer (reset, or client gone)."""
MAX_TRACKED_BODIES = 65_536
"""Distinct request bodies whose attempt counts are kept; beyond that the count restarts."""

log = logging.getLogger("uvicorn.error").getChild("faults")
"""A child of uvicorn's server logger, so injected faults follow ``--log-level``."""

_ERROR_BODIES = {
    "429": {
        "statusCode": 429,
        "error": "Too Many Requests",
        "message": "ThrottlerException: Too Many Requests",
    },
    "503": {"statusCode": 503, "error": "Service Unavailable", "message": "Service Unavailable"},
}


class FaultSpecError(ValueError):
    """A ``--faults`` value that cannot be understood; says which part and what is allowed."""


@dataclass(frozen=True)
class FaultPlan:
    """Which faults to inject, how often, and how long the slow ones take."""

    rate: float
    """Probability that an attempt is faulted, 0 to 1."""
    kinds: tuple[str, ...]
    seed: int = 0
    retry_after: int = 1
    """Seconds a ``429`` asks the client to wait (``Retry-After`` takes whole seconds)."""
    hang: float = 5.0
    """Seconds a ``timeout`` holds the request: set it above the client's read timeout."""
    delay: float = 0.5
    """Seconds a ``slow`` answer waits."""
    max_streak: int = 3
    """Faults in a row on one body before an attempt is let through."""

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.rate <= 1:
            problems.append(f"rate={self.rate} must be between 0 and 1")
        if not self.kinds:
            problems.append("kinds is empty; name at least one of " + ",".join(FAULT_KINDS))
        unknown = [kind for kind in self.kinds if kind not in FAULT_KINDS]
        if unknown:
            problems.append(f"unknown kinds {unknown}; use {','.join(FAULT_KINDS)}")
        if self.retry_after < 0 or self.hang < 0 or self.delay < 0:
            problems.append("retry_after, hang and delay must be >= 0")
        if self.max_streak < 1:
            problems.append(f"max_streak={self.max_streak} must be >= 1")
        if problems:
            raise FaultSpecError("; ".join(problems))

    @classmethod
    def parse(cls, text: str, seed: int = 0) -> FaultPlan:
        """``rate=0.3,kinds=429,503,timeout`` → a plan; a bare item continues the previous list.

        ``kinds`` is a comma list inside a comma list, so every item without ``=`` belongs
        to the key before it: ``kinds=429,503,hang=3`` is kinds ``429, 503`` and hang 3.
        """
        fields: dict[str, list[str]] = {}
        key = None
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            if "=" in item:
                key, _, value = item.partition("=")
                key = key.strip()
                if key in fields:
                    raise FaultSpecError(f"{key!r} given twice in --faults {text!r}")
                fields[key] = [value.strip()]
            elif key == "kinds":
                fields[key].append(item)
            else:
                raise FaultSpecError(f"{item!r} in --faults {text!r} is not key=value")
        allowed = {"rate", "kinds", "retry_after", "hang", "delay", "max_streak"}
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise FaultSpecError(f"unknown --faults keys {unknown}; allowed: {sorted(allowed)}")
        if "rate" not in fields:
            raise FaultSpecError(f"--faults {text!r} needs rate=<0..1>")
        try:
            return cls(
                rate=float(fields["rate"][0]),
                kinds=tuple(fields.get("kinds", FAULT_KINDS)),
                seed=seed,
                retry_after=int(fields.get("retry_after", ["1"])[0]),
                hang=float(fields.get("hang", ["5"])[0]),
                delay=float(fields.get("delay", ["0.5"])[0]),
                max_streak=int(fields.get("max_streak", ["3"])[0]),
            )
        except ValueError as error:
            if isinstance(error, FaultSpecError):
                raise
            raise FaultSpecError(f"--faults {text!r}: {error}") from None

    def decide(self, body: bytes, attempt: int) -> str | None:
        """The fault for the ``attempt``-th (0-based) request carrying ``body``, or None."""
        digest = hashlib.sha256(f"{self.seed}:{attempt}:".encode() + body).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        if draw >= self.rate:
            return None
        return self.kinds[int.from_bytes(digest[8:16], "big") % len(self.kinds)]


class EmulatorStats:
    """Thread-safe counters of what the emulator received, answered and injected."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self.plan = plan
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._responses: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._attempts: dict[bytes, tuple[int, int]] = {}
        """Body digest → (requests seen, current fault streak)."""

    def request(self, route: str) -> None:
        with self._lock:
            self._requests[route] += 1

    def response(self, status: str) -> None:
        with self._lock:
            self._responses[status] += 1

    def fault_for(self, body: bytes) -> str | None:
        """Decide (and count) the fault of this attempt of ``body`` under the plan."""
        if self.plan is None or self.plan.rate == 0:
            return None
        key = hashlib.sha256(body).digest()
        with self._lock:
            if key not in self._attempts and len(self._attempts) >= MAX_TRACKED_BODIES:
                self._attempts.clear()
            seen, streak = self._attempts.get(key, (0, 0))
            kind = self.plan.decide(body, seen) if streak < self.plan.max_streak else None
            self._attempts[key] = (seen + 1, streak + 1 if kind else 0)
            if kind:
                self._faults[kind] += 1
        return kind

    def snapshot(self) -> dict[str, Any]:
        """The counters as ``GET /_stats`` returns them."""
        with self._lock:
            return {
                "requests": dict(sorted(self._requests.items())),
                "responses": dict(sorted(self._responses.items())),
                "faults": dict(sorted(self._faults.items())),
                "fault_plan": asdict(self.plan) if self.plan else None,
            }


def route_of(scope: Scope) -> str:
    """``"POST /analytics"``, or ``"GET (other)"`` for paths the emulator does not serve."""
    path = scope.get("path", "")
    return f"{scope.get('method', '?')} {path if path in KNOWN_PATHS else '(other)'}"


class RequestStats:
    """Outermost middleware: counts every request and response, and serves ``GET /_stats``."""

    def __init__(self, app: ASGIApp, stats: EmulatorStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.stats.request(route_of(scope))
        if scope.get("path") == STATS_PATH and scope.get("method") == "GET":
            await _send_json(send, 200, self.stats.snapshot())
            self.stats.response("200")
            return
        status: list[int] = []
        complete = False

        async def counting_send(message: Message) -> None:
            nonlocal complete
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                complete = True
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.stats.response(str(status[0]) if status and complete else DROPPED)


class FaultInjector:
    """Middleware that turns some ``POST /analytics`` and ``GET /call`` attempts into faults."""

    def __init__(self, app: ASGIApp, stats: EmulatorStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plan = self.stats.plan
        route = (scope.get("method"), scope.get("path"))
        if plan is None or scope["type"] != "http" or route not in FAULTED_ROUTES:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return
        replay = _replayer(body, receive)
        query = scope.get("query_string", b"")
        kind = self.stats.fault_for(body + b"?" + query if query else body)
        if kind is None:
            await self.app(scope, replay, send)
            return
        log.info("injecting %s into %s %s (body %s)", kind, *route, _short_digest(body + query))
        if kind in _ERROR_BODIES:
            headers = [(b"retry-after", str(plan.retry_after).encode())] if kind == "429" else []
            await _send_json(send, int(kind), _ERROR_BODIES[kind], headers)
        elif kind == "reset":
            await _send_partial(send)
        elif kind == "garbage":
            await _send_truncated(self.app, scope, replay, send)
        elif kind == "timeout":
            if not await _client_left_within(receive, plan.hang):
                await self.app(scope, replay, send)
        else:
            await asyncio.sleep(plan.delay)
            await self.app(scope, replay, send)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when the client disconnected first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replayer(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the already-read body to the app, then defers to the real one."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _client_left_within(receive: Receive, seconds: float) -> bool:
    """Wait up to ``seconds``; True as soon as the client disconnects."""
    try:
        message = await asyncio.wait_for(receive(), timeout=seconds)
    except TimeoutError:
        return False
    return bool(message["type"] == "http.disconnect")


async def _send_json(
    send: Send, status: int, payload: object, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_partial(send: Send) -> None:
    """Promise a body, send part of it and stop: the server closes the connection mid-response."""
    part = b'[{"name":"'
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
        }
    )
    await send({"type": "http.response.body", "body": part, "more_body": True})


async def _send_truncated(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run the request, then send the first half of a successful body as if it were all of it.

    A JSON array cut before its closing bracket can never parse, so the fault is always
    detectable. Answers other than 200 pass unchanged.
    """
    start: Message = {}
    chunks: list[bytes] = []

    async def capture(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, capture)
    body = b"".join(chunks)
    if start.get("status") == 200 and len(body) > 1:
        body = body[: len(body) // 2]
    headers = [
        (name, value)
        for name, value in start.get("headers", [])
        if name.lower() != b"content-length"
    ]
    headers.append((b"content-length", str(len(body)).encode()))
    await send(
        {"type": "http.response.start", "status": start.get("status", 500), "headers": headers}
    )
    await send({"type": "http.response.body", "body": body})


def _short_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:12]
