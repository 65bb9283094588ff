"""Running the emulator in the background of a test, a benchmark or ``make demo``.

``run_emulator`` serves real HTTP on a free loopback port from a thread of the calling
process, so a test talks to it exactly as to the real API. The files are loaded before
the port opens: a malformed record raises ``MalformedRecordError`` in the caller.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from vapi_emulator.app import create_app
from vapi_emulator.engine import Engine
from vapi_emulator.store import StoreOptions

LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 30.0


@contextmanager
def run_emulator(
    calls: Sequence[Path],
    api_key: str,
    port: int = 0,
    numbers_as_strings: bool = False,
    store: StoreOptions | None = None,
) -> Iterator[str]:
    """Serve ``calls`` on ``http://127.0.0.1:<port>`` (a free port when 0); yields the base URL.

    ``store`` chooses where the calls live (``store.StoreOptions``; by default in memory
    below a million calls). The server stops when the block exits.
    """
    engine = Engine(calls, store)
    engine.load()
    with run_app(create_app(engine, api_key, numbers_as_strings=numbers_as_strings), port) as url:
        yield url


@contextmanager
def run_app(app: FastAPI, port: int = 0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on loopback in a daemon thread; yields the base URL."""
    config = uvicorn.Config(
        app, host=LOOPBACK, port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="vapi-emulator", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"vapi-emulator did not start on {LOOPBACK}:{port}")
            time.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{LOOPBACK}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT_SECONDS)
