"""``vapi-emulator``: generate a synthetic org's calls, write its mapping, serve the Analytics API."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vapi_emulator.assistants import AssistantDirectory, AssistantsFileError
from vapi_emulator.calls import DriftedEngine, DriftPlan
from vapi_emulator.data import generate_calls_file, output_format_for
from vapi_emulator.engine import Engine, OutputFormat
from vapi_emulator.faults import FaultPlan, FaultSpecError
from vapi_emulator.generate import DEFAULT_CALLS_PER_MONTH, DEFAULT_TIMEZONE, parse_month
from vapi_emulator.org import DEFAULT_ASSISTANTS, DEFAULT_SEED, demo_org, render_mapping_csv
from vapi_emulator.records import MalformedRecordError
from vapi_emulator.store import (
    CACHE_SUFFIX,
    DISK_MEMORY_LIMIT,
    DISK_THRESHOLD_CALLS,
    STORE_KINDS,
    StoreError,
    StoreOptions,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
API_KEY_ENV = "VAPI_EMULATOR_API_KEY"
DEFAULT_API_KEY = "vapi-emulator-key"
EXIT_BAD_INPUT = 2
EXIT_CANNOT_LISTEN = 3
MAX_CALLS_FILE_BYTES = 8 << 30
"""8 GiB: 1.5M calls are ~100 MB of Parquet; a larger file is most likely the wrong one."""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be a positive integer")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vapi-emulator",
        description="A local, faithful implementation of the Vapi Analytics API (POST /analytics).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser(
        "generate",
        help="write a deterministic synthetic org's calls (same arguments, same bytes)",
        description="Write Vapi Call records of the demo org: Parquet (nested, typed) or JSON Lines.",
    )
    gen.add_argument(
        "--month", required=True, help="first month, YYYY-MM (the org's local calendar)"
    )
    gen.add_argument("--months", type=_positive, default=1, help="number of months (default 1)")
    gen.add_argument(
        "--assistants",
        type=_positive,
        default=DEFAULT_ASSISTANTS,
        help="assistants in the org (default 24)",
    )
    gen.add_argument(
        "--calls",
        type=_positive,
        default=DEFAULT_CALLS_PER_MONTH,
        help=f"calls per month (default {DEFAULT_CALLS_PER_MONTH:,})",
    )
    gen.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default 7)")
    gen.add_argument(
        "--format",
        choices=get_args(OutputFormat),
        help="output format (default: from the --out suffix, else parquet)",
    )
    gen.add_argument(
        "--timezone",
        default=DEFAULT_TIMEZONE,
        help=f"the org's zone: months and office hours are local to it (default {DEFAULT_TIMEZONE})",
    )
    gen.add_argument("--out", required=True, type=Path, help="file to write")

    org = commands.add_parser(
        "org",
        help="write the demo org's assistant→team mapping CSV",
        description="Write the assistant→team mapping of the demo org (the default of generate).",
    )
    org.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default 7)")
    org.add_argument(
        "--assistants", type=_positive, default=DEFAULT_ASSISTANTS, help="assistants (default 24)"
    )
    org.add_argument("--out", required=True, type=Path, help="CSV file to write")

    serve = commands.add_parser(
        "serve",
        help="serve POST /analytics over call records",
        description="Serve the Vapi Analytics API over Parquet, JSON or JSON Lines files of Calls.",
    )
    serve.add_argument(
        "--calls", required=True, action="append", type=Path, help="call records file (repeatable)"
    )
    serve.add_argument(
        "--assistants",
        type=Path,
        help="an exported GET /assistant answer (JSON array) to list at GET /assistant "
        "(default: the calls files' *.assistants.json, written by generate)",
    )
    serve.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})"
    )
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    serve.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV, DEFAULT_API_KEY),
        help=f"bearer key clients must send (default ${API_KEY_ENV}, else {DEFAULT_API_KEY!r})",
    )
    serve.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        default="info",
        help="uvicorn log level; 'info' logs one access line per request (default info)",
    )
    serve.add_argument(
        "--numbers-as-strings",
        action="store_true",
        help="send aggregates as numeric strings, as Postgres numerics arrive through Node",
    )
    serve.add_argument(
        "--faults",
        metavar="SPEC",
        help="inject faults into POST /analytics and GET /call, e.g. "
        "'rate=0.3,kinds=429,503,timeout,reset,slow,garbage' (optional hang=S, delay=S, "
        "retry_after=S, max_streak=N); counters at GET /_stats",
    )
    serve.add_argument(
        "--fault-seed",
        type=int,
        default=0,
        help="seed of the fault decisions: same seed and requests, same faults (default 0)",
    )
    serve.add_argument(
        "--drift-drop",
        type=float,
        default=0.0,
        metavar="PCT",
        help="drop this percentage of the calls from POST /analytics answers only; GET /call "
        "still lists them and GET /_drift names them (for tests of verification; default 0)",
    )
    serve.add_argument(
        "--drift-recost",
        type=float,
        default=0.0,
        metavar="PCT",
        help="raise the cost (and llm) of this percentage of the calls by a quarter in "
        "POST /analytics answers only (default 0)",
    )
    serve.add_argument(
        "--drift-seed", type=int, default=0, help="which calls drift: same seed, same calls"
    )
    serve.add_argument(
        "--store",
        choices=STORE_KINDS,
        default="auto",
        help="where the calls live: 'memory', 'disk' (a DuckDB file cached beside the calls, "
        "reused while they are unchanged) or 'auto': disk from "
        f"{DISK_THRESHOLD_CALLS:,} calls on (default auto)",
    )
    serve.add_argument(
        "--store-path",
        type=Path,
        help=f"the on-disk store's file (default: <first --calls file>{CACHE_SUFFIX})",
    )
    serve.add_argument(
        "--memory-limit",
        help=f"DuckDB memory_limit, e.g. 2GB (default {DISK_MEMORY_LIMIT} on disk, none in memory)",
    )
    serve.add_argument("--threads", type=_positive, help="DuckDB threads (default: one per core)")
    serve.add_argument(
        "--max-calls-file-bytes",
        type=_positive,
        default=MAX_CALLS_FILE_BYTES,
        help=f"refuse call files larger than this (default {MAX_CALLS_FILE_BYTES:,})",
    )
    return parser


def _say(message: str) -> None:
    print(f"vapi-emulator: {message}", file=sys.stderr, flush=True)


def _generate(args: argparse.Namespace) -> int:
    try:
        parse_month(args.month)
        ZoneInfo(args.timezone)
        demo_org(args.seed, args.assistants)
    except (ValueError, ZoneInfoNotFoundError) as error:
        _say(f"error: {error}")
        return EXIT_BAD_INPUT
    output_format: OutputFormat = args.format or output_format_for(args.out)
    started = time.perf_counter()
    count = generate_calls_file(
        args.out,
        args.month,
        months=args.months,
        calls_per_month=args.calls,
        assistants=args.assistants,
        seed=args.seed,
        timezone=args.timezone,
        output_format=output_format,
        progress=_say,
    )
    elapsed = time.perf_counter() - started
    print(
        f"wrote {count:,} calls ({args.months} month(s) from {args.month}, "
        f"{args.assistants} assistants, seed {args.seed}) to {args.out} "
        f"[{output_format}, {args.out.stat().st_size / 1e6:.1f} MB] in {elapsed:.1f} s"
    )
    return 0


def _org(args: argparse.Namespace) -> int:
    try:
        org = demo_org(args.seed, args.assistants)
    except ValueError as error:
        _say(f"error: {error}")
        return EXIT_BAD_INPUT
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render_mapping_csv(org), encoding="utf-8")
    print(
        f"wrote the mapping of {len(org.assistants)} assistants ({len(org.mapping)} rows) to {args.out}"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from vapi_emulator.app import create_app

    try:
        faults = FaultPlan.parse(args.faults, seed=args.fault_seed) if args.faults else None
    except FaultSpecError as error:
        _say(f"error: {error}")
        return EXIT_BAD_INPUT
    for path in args.calls:
        size = path.stat().st_size if path.is_file() else 0
        if size > args.max_calls_file_bytes:
            _say(
                f"error: {path} is {size:,} bytes, over --max-calls-file-bytes="
                f"{args.max_calls_file_bytes:,}; check the path or raise the limit"
            )
            return EXIT_BAD_INPUT
    try:
        drift = DriftPlan(args.drift_drop, args.drift_recost, args.drift_seed)
    except ValueError as error:
        _say(f"error: {error}")
        return EXIT_BAD_INPUT
    store = StoreOptions(args.store, args.store_path, args.memory_limit, args.threads)
    engine = DriftedEngine(args.calls, drift, store) if drift.active else Engine(args.calls, store)
    try:
        listener = _listen(args.host, args.port)
    except OSError as error:
        _say(
            f"error: cannot listen on {args.host}:{args.port} ({error.strerror or error}); "
            "stop what uses it or pass another --port"
        )
        return EXIT_CANNOT_LISTEN
    started = time.perf_counter()
    try:
        count = engine.load()
        assistants = (
            AssistantDirectory.from_file(args.assistants)
            if args.assistants
            else AssistantDirectory.beside(args.calls)
        )
    except (MalformedRecordError, AssistantsFileError, StoreError) as error:
        listener.close()
        _say(f"error: {error}")
        return EXIT_BAD_INPUT
    _say(
        f"loaded {count:,} calls from {len(args.calls)} file(s) and {len(assistants):,} assistants"
        f" in {time.perf_counter() - started:.1f} s ({_where(engine)})"
    )
    if drift.active:
        _say(
            f"drift: {drift.drop_percent} % of calls dropped and {drift.recost_percent} % re-costed "
            f"in POST /analytics only (seed {drift.seed}); the calls at GET /_drift"
        )
    if faults:
        _say(f"injecting faults: {args.faults} (seed {args.fault_seed}); counters at GET /_stats")
    app = create_app(
        engine,
        args.api_key,
        numbers_as_strings=args.numbers_as_strings,
        faults=faults,
        assistants=assistants,
    )
    bound_host, bound_port = listener.getsockname()[:2]
    _say(f"serving POST http://{_url_host(bound_host)}:{bound_port}/analytics")
    config = uvicorn.Config(app, log_level=args.log_level)
    uvicorn.Server(config).run(sockets=[listener])
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound and listening, so a busy port fails before anything loads."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(2048)
    except OSError:
        listener.close()
        raise
    listener.set_inheritable(True)
    return listener


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _where(engine: Engine) -> str:
    opened = engine.store
    if opened is None or opened.kind == "memory":
        return "in memory"
    verb = "reused" if opened.cached else "stored"
    return f"{verb} on disk in {opened.path}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {"generate": _generate, "org": _org, "serve": _serve}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
