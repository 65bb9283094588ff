"""A real HTTP/1.1 server on 127.0.0.1 that plays scripted replies and records every request.

Integration tests need real sockets — keep-alive, timeouts, a connection reset by the
peer — which a mocked transport cannot show. Each request takes the next entry of the
script (a fixed :class:`Reply` or a function of the request), so a test states exactly
what the "API" does on each attempt and then asserts on :attr:`ScriptedServer.requests`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Reply:
    """What the server does with one request."""

    status: int = 200
    body: Any = b""
    """``bytes`` and ``str`` are sent as they are; anything else is sent as JSON."""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (longer than the client's read timeout = a timeout)."""
    drop: Literal["reset", "close"] | None = None
    """Answer nothing: ``reset`` aborts the connection (RST), ``close`` closes it cleanly."""


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes
    received_at: float
    """``time.monotonic()`` when the request was read."""
    client_port: int
    """The client's source port: equal ports on successive requests prove keep-alive."""

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[[RecordedRequest], Reply]


class ScriptedServer:
    """Plays ``script`` in order, one entry per request, then ``default`` (or a loud 599)."""

    def __init__(
        self, *script: Reply | Responder, default: Reply | Responder | None = None
    ) -> None:
        self._script: list[Reply | Responder] = list(script)
        self._default = default
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.answered: list[str] = []
        """Paths with the first query name of each answered request, in the order answered."""
        self._server = ThreadingHTTPServer((LOOPBACK, 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def play(self, *script: Reply | Responder) -> None:
        """Append entries to the script."""
        with self._lock:
            self._script.extend(script)

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            number = len(self.requests)
            entry = self._script.pop(0) if self._script else self._default
        if entry is None:
            return Reply(599, f"scripted server: no reply scripted for request {number}")
        return entry if isinstance(entry, Reply) else entry(request)


def _handler_for(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self._play()

        def do_GET(self) -> None:
            self._play()

        def _play(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = RecordedRequest(
                method=self.command,
                path=self.path,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=self.rfile.read(length),
                received_at=time.monotonic(),
                client_port=self.client_address[1],
            )
            reply = server._next(request)
            if reply.delay:
                time.sleep(reply.delay)
            if reply.drop is not None:
                self._drop(reply.drop)
                return
            body = _encode(reply.body)
            try:
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
            except OSError:
                self.close_connection = True
                return
            with server._lock:
                server.answered.append(_first_name(request))

        def _drop(self, how: str) -> None:
            if how == "reset":
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            self.close_connection = True
            self.connection.close()

        def finish(self) -> None:
            with contextlib.suppress(OSError):
                super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: pytest shows failures, not an access log."""

    return Handler


def _encode(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def _first_name(request: RecordedRequest) -> str:
    try:
        return str(request.json()["queries"][0]["name"])
    except (ValueError, KeyError, IndexError, TypeError):
        return request.path


def analytics_results(
    request: RecordedRequest, row: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """A spec-shaped answer to every query of ``request``; ``row`` builds each query's one row."""
    return [
        {
            "name": query["name"],
            "timeRange": {
                "start": "2026-10-01T00:00:00.000Z",
                "end": "2026-11-01T00:00:00.000Z",
                "timezone": "UTC",
            },
            "result": [row(query) if row else {"countId": 1}],
        }
        for query in request.json()["queries"]
    ]


def echo(status: int = 200, delay: float = 0.0) -> Responder:
    """A responder answering every query of a request by name, after ``delay`` seconds."""

    def respond(request: RecordedRequest) -> Reply:
        return Reply(status, analytics_results(request), delay=delay)

    return respond
