"""The HTTP face of the emulator: ``POST /analytics``, ``GET /assistant`` (``assistants.py``),
``GET /call`` (``calls.py``) and ``GET /health``, shaped like Vapi's.

Vapi runs NestJS, so errors look like NestJS's: ``{"statusCode", "error", "message"}``
with one message per problem on a 400, and the guard (bearer key) runs before body
validation. A request body can never cause a 500: every way a body can be wrong maps
to a 400 (or 413 when it is too large). ``faults.py`` adds, around all of it, the
injected faults of ``--faults`` and the counters served at ``GET /_stats``.
"""

from __future__ import annotations

import hmac
import json
import re
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from vapi_chargeback.analytics.models import AnalyticsQueryDTO, AnalyticsQueryResult, field_path
from vapi_emulator.assistants import AssistantDirectory, parse_list_query
from vapi_emulator.calls import add_call_routes
from vapi_emulator.engine import Engine, ResultTooLarge
from vapi_emulator.faults import EmulatorStats, FaultInjector, FaultPlan, RequestStats
from vapi_emulator.render import response_body
from vapi_emulator.resolve import QueryProblems, resolve

MAX_BODY_BYTES = 1_048_576
"""Bodies above this are refused with 413 before they are parsed; a compressed body's limit
applies to what it inflates to, as Express's body parser does (so a zip bomb stops there)."""
_INFLATE_WBITS = {
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    "deflate": zlib.MAX_WBITS,
}
"""``Content-Encoding`` values the body parser inflates (``identity`` passes unchanged)."""
_EPOCH_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")
"""A string pydantic would read as Unix seconds where the spec wants a date-time string."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "statusCode": {"type": "integer"},
        "error": {"type": "string"},
        "message": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    },
    "required": ["statusCode", "message"],
}


def error_body(status: int, message: str | list[str]) -> dict[str, Any]:
    """NestJS's error shape; a 401 carries no ``error`` field, like Nest's UnauthorizedException."""
    body: dict[str, Any] = {"statusCode": status}
    if status != HTTPStatus.UNAUTHORIZED:
        body["error"] = HTTPStatus(status).phrase
    body["message"] = message
    return body


def _bad_request(messages: list[str]) -> JSONResponse:
    return JSONResponse(error_body(400, messages), status_code=400)


def _validation_messages(errors: list[dict[str, Any]]) -> list[str]:
    """One line per pydantic error, naming the field path inside the body."""
    messages = []
    for error in errors:
        location = [part for part in error.get("loc", ()) if not _is_union_tag(part)]
        if location and location[0] == "body":
            location = location[1:]
        if error.get("type") == "json_invalid":
            detail = (error.get("ctx") or {}).get("error", "malformed JSON")
            messages.append(f"body: not valid JSON ({detail})")
            continue
        path = field_path(tuple(location)) if location else "body"
        detail = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        messages.append(f"{path}: {detail}")
    return messages


def _is_union_tag(part: object) -> bool:
    return isinstance(part, str) and part.startswith(("function-", "literal["))


def _epoch_errors(body: bytes) -> list[dict[str, Any]]:
    """Pydantic-style errors for ``timeRange.start``/``end`` given as Unix epochs.

    The spec types them as date-time strings and the real service refuses numbers; pydantic's
    lax datetime would take ``1700000000`` (or ``"1700000000"``) as seconds since 1970.
    """
    try:
        document = json.loads(body)
    except ValueError:
        return []
    queries = document.get("queries") if isinstance(document, dict) else None
    errors = []
    for index, query in enumerate(queries if isinstance(queries, list) else []):
        time_range = query.get("timeRange") if isinstance(query, dict) else None
        if not isinstance(time_range, dict):
            continue
        for bound in ("start", "end"):
            value = time_range.get(bound)
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            if is_number or (isinstance(value, str) and _EPOCH_TEXT.fullmatch(value)):
                errors.append(
                    {
                        "loc": ("body", "queries", index, "timeRange", bound),
                        "msg": f"must be an ISO-8601 date-time string such as "
                        f"'2026-10-01T00:00:00.000Z', not a Unix epoch ({value!r})",
                        "type": "datetime_type",
                    }
                )
    return errors


async def reject_epochs(request: Request) -> None:
    """Refuse epochs with every other problem of the body, in the usual 400 (a dependency)."""
    errors = _epoch_errors(await request.body())
    if not errors:
        return
    epochs = {error["loc"] for error in errors}
    try:
        AnalyticsQueryDTO.model_validate_json(await request.body())
    except ValidationError as error:
        others = [
            {**item, "loc": ("body", *item["loc"])} for item in error.errors(include_url=False)
        ]
        errors = [item for item in others if item["loc"] not in epochs] + errors
    raise RequestValidationError(errors)


class TrailingSlash:
    """``/analytics/`` is ``/analytics``: Express routes ignore one trailing slash (no redirect)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path[:-1], "raw_path": scope.get("raw_path", b"")[:-1]}
        await self.app(scope, receive, send)


class BodySizeLimit:
    """Refuses request bodies over ``limit`` bytes with 413, counting what actually arrives.

    A ``gzip`` or ``deflate`` body is inflated here, at most ``limit`` bytes of it (413
    beyond), and handed on as plain JSON, as the real service's body parser does; another
    ``Content-Encoding`` is refused with 415 and a body that does not inflate with 400.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, send, 413 if declared.isdigit() else 400)
            return
        encoding = headers.get(b"content-encoding", b"identity").decode("latin-1").strip().lower()
        if encoding != "identity" and encoding not in _INFLATE_WBITS:
            await self._refuse(scope, send, 415, f"unsupported content encoding {encoding!r}")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, send, 413)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if encoding in _INFLATE_WBITS:
            try:
                body = self._inflate(body, encoding)
            except _Refused as refused:
                await self._refuse(scope, send, refused.status, refused.detail)
                return
            kept = [(k, v) for k, v in scope["headers"] if k not in _ENCODING_HEADERS]
            scope = {**scope, "headers": [*kept, (b"content-length", str(len(body)).encode())]}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _inflate(self, body: bytes, encoding: str) -> bytes:
        """The inflated body, never more than ``limit + 1`` bytes of it held; else ``_Refused``."""
        inflater = zlib.decompressobj(_INFLATE_WBITS[encoding])
        try:
            inflated = inflater.decompress(body, self.limit + 1)
        except zlib.error as error:
            raise _Refused(400, f"body: not valid {encoding} data ({error})") from None
        if len(inflated) > self.limit or inflater.unconsumed_tail:
            raise _Refused(413, f"request body inflates to more than {self.limit} bytes")
        if not inflater.eof or inflater.unused_data:
            raise _Refused(400, f"body: not valid {encoding} data (truncated or trailing bytes)")
        return inflated

    async def _refuse(
        self, scope: Scope, send: Send, status: int, detail: str | None = None
    ) -> None:
        message = detail or (
            f"request body larger than {self.limit} bytes"
            if status == 413
            else "invalid Content-Length header"
        )
        listed = status == 400 and detail is not None
        response = JSONResponse(
            error_body(status, [message] if listed else message), status_code=status
        )
        await response(scope, _no_body, send)


_ENCODING_HEADERS = (b"content-length", b"content-encoding")


class _Refused(Exception):
    """A body the parser refuses: the status and the message of the error answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


_BEARER = HTTPBearer(auto_error=False, scheme_name="bearer")


class RequireKey:
    """The guard: the request's bearer key must equal the configured one (constant-time)."""

    def __init__(self, api_key: str) -> None:
        self._expected = api_key.encode("utf-8")

    async def __call__(
        self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
    ) -> None:
        given = credentials.credentials.encode("utf-8") if credentials else b""
        if not hmac.compare_digest(given, self._expected):
            raise StarletteHTTPException(status_code=401)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def create_app(
    engine: Engine,
    api_key: str,
    numbers_as_strings: bool = False,
    max_body_bytes: int = MAX_BODY_BYTES,
    faults: FaultPlan | None = None,
    assistants: AssistantDirectory | None = None,
) -> FastAPI:
    """The emulator app over ``engine``; the engine's files are loaded once, at startup.

    ``GET /assistant`` lists ``assistants``, by default those beside the engine's call files
    (``assistants.AssistantDirectory.beside``).

    ``faults`` turns some ``POST /analytics`` attempts into errors (see ``faults.py``);
    ``app.state.stats`` holds the counters ``GET /_stats`` returns, with or without faults.
    """
    if not api_key:
        raise ValueError("api_key must not be empty: the emulator always requires a bearer key")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(engine.load)
        yield
        engine.close()

    app = FastAPI(
        redirect_slashes=False,
        title="Vapi Analytics API (vapi-emulator)",
        description="A local implementation of Vapi's POST /analytics over call records.",
        version="1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )

    @app.post(
        "/analytics",
        operation_id="AnalyticsController_query",
        summary="Create Analytics Queries",
        tags=["Analytics"],
        status_code=200,
        dependencies=[Depends(RequireKey(api_key)), Depends(reject_epochs)],
        responses={
            200: {"model": list[AnalyticsQueryResult]},
            400: {"description": "Invalid request", "content": _error_content()},
            401: {"description": "Missing or wrong bearer key", "content": _error_content()},
            413: {"description": "Body too large", "content": _error_content()},
            415: {"description": "Unsupported Content-Encoding", "content": _error_content()},
        },
        response_class=Response,
    )
    def analytics(body: AnalyticsQueryDTO) -> Response:
        queries = resolve(body, time.time_ns() // 1_000_000 * 1_000)
        results = engine.run(queries, numbers_as_strings=numbers_as_strings)
        return Response(response_body(results, numbers_as_strings), media_type="application/json")

    directory = assistants if assistants is not None else AssistantDirectory.beside(engine.paths)

    @app.get(
        "/assistant",
        operation_id="AssistantController_findAll",
        summary="List Assistants",
        tags=["Assistants"],
        dependencies=[Depends(RequireKey(api_key))],
        responses={
            200: {"description": "The assistants, newest first (a JSON array)"},
            400: {"description": "Invalid parameters", "content": _error_content()},
            401: {"description": "Missing or wrong bearer key", "content": _error_content()},
        },
        response_class=Response,
    )
    def list_assistants(request: Request) -> Response:
        chosen = directory.select(parse_list_query(request.query_params.multi_items()))
        return Response(json.dumps(chosen, ensure_ascii=False), media_type="application/json")

    add_call_routes(app, engine, RequireKey(api_key))

    @app.get("/health", tags=["Health"])
    def health() -> dict[str, object]:
        return {"status": "ok", "calls": engine.calls}

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_: Request, error: RequestValidationError) -> JSONResponse:
        return _bad_request(_validation_messages(list(error.errors())))

    @app.exception_handler(QueryProblems)
    async def unanswerable(_: Request, error: QueryProblems) -> JSONResponse:
        return _bad_request(error.messages)

    @app.exception_handler(ResultTooLarge)
    async def too_large(_: Request, error: ResultTooLarge) -> JSONResponse:
        return _bad_request([str(error)])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        status = error.status_code
        message: str | list[str]
        if status == 400:
            message = [f"body: {error.detail}"]
        elif status in (404, 405):
            message = f"Cannot {request.method} {request.url.path}"
        else:
            message = HTTPStatus(status).phrase
        return JSONResponse(error_body(status, message), status_code=status, headers=error.headers)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    # Outermost last: the counters see everything, the body limit applies before faults,
    # and all of them see the path without its trailing slash.
    app.state.stats = EmulatorStats(faults)
    app.add_middleware(FaultInjector, stats=app.state.stats)
    app.add_middleware(BodySizeLimit, limit=max_body_bytes)
    app.add_middleware(RequestStats, stats=app.state.stats)
    app.add_middleware(TrailingSlash)
    return app


def _error_content() -> dict[str, Any]:
    return {"application/json": {"schema": _ERROR_SCHEMA}}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document without its 422 (this API answers 400, as NestJS does)."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    for path in document.get("paths", {}).values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    app.openapi_schema = document
    return document
