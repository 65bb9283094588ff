"""Where the loaded calls live: in memory, or in a DuckDB file cached beside the call files.

A million calls and more would otherwise sit in the server's memory (5M calls: 1.1 GiB
just loaded, 5 GiB while answering). On disk, DuckDB's buffer manager keeps only what
the queries touch within ``memory_limit`` and spills the rest, so the server stays small
whatever the org. The file is a cache: it is keyed by the call files (path, size and
modification time) and by ``STORE_FORMAT``, built once (into a partial file that is then
renamed, so a crash never leaves a half-built cache that looks complete), and opened
read-only by every later start with the same files — no second load, no second check.
The tables and the SQL over them are the same in both places, so the answers are too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb

from vapi_emulator.fields import CALL_FIELDS

StoreKind = Literal["auto", "memory", "disk"]
STORE_KINDS: tuple[StoreKind, ...] = ("auto", "memory", "disk")
DISK_THRESHOLD_CALLS = 1_000_000
"""``auto`` keeps at least this many calls on disk: below it memory is small and fast."""
JSON_BYTES_PER_CALL = 600
"""Estimate for JSON files, whose calls are not counted before loading (generated: ~700 B)."""
DISK_MEMORY_LIMIT = "1GB"
"""DuckDB's ``memory_limit`` for an on-disk store unless ``--memory-limit`` says otherwise."""
STORE_FORMAT = 2
"""Bumped whenever the stored tables change, so older caches are rebuilt, never misread."""
CACHE_SUFFIX = ".store.duckdb"


class StoreError(RuntimeError):
    """The on-disk store cannot be built or opened; the message names the path and a fix."""


@dataclass(frozen=True)
class StoreOptions:
    """How an ``Engine`` keeps its calls (``serve --store/--store-path/--memory-limit/--threads``)."""

    kind: StoreKind = "auto"
    path: Path | None = None
    """The cache file; by default ``<first calls file>.store.duckdb``."""
    memory_limit: str | None = None
    """DuckDB ``memory_limit``; on disk ``DISK_MEMORY_LIMIT`` when None, in memory unlimited."""
    threads: int | None = None
    threshold_calls: int = DISK_THRESHOLD_CALLS


@dataclass(frozen=True)
class OpenedStore:
    """What ``open_store`` did: where the calls are and whether they still need loading."""

    kind: Literal["memory", "disk"]
    path: Path | None
    cached: bool
    key: str


def estimated_calls(paths: Sequence[Path]) -> int:
    """Calls in ``paths``: counted from Parquet footers, estimated from the size of JSON files."""
    total = 0
    for path in paths:
        if not path.is_file():
            continue
        if path.suffix.lower() == ".parquet":
            try:
                row = (
                    duckdb.connect()
                    .execute(
                        "SELECT sum(num_rows) FROM parquet_file_metadata($path)",
                        {"path": str(path)},
                    )
                    .fetchone()
                )
            except duckdb.Error:
                continue
            total += int(row[0]) if row and row[0] is not None else 0
        else:
            total += path.stat().st_size // JSON_BYTES_PER_CALL
    return total


def source_key(paths: Sequence[Path]) -> str:
    """Identity of the loaded data: the files (path, size, mtime), the fields and the format."""
    described: list[object] = [STORE_FORMAT, [repr(field) for field in CALL_FIELDS]]
    for path in paths:
        stat = path.stat()
        described.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()


def default_cache_path(paths: Sequence[Path]) -> Path:
    first = Path(paths[0])
    return first.with_name(first.name + CACHE_SUFFIX)


def choose_kind(options: StoreOptions, paths: Sequence[Path]) -> Literal["memory", "disk"]:
    if options.kind != "auto":
        return options.kind
    if not paths:
        return "memory"
    return "disk" if estimated_calls(paths) >= options.threshold_calls else "memory"


def configure(connection: duckdb.DuckDBPyConnection, options: StoreOptions, on_disk: bool) -> None:
    """Session settings: UTC, and the memory and thread limits the options ask for."""
    connection.execute("SET TimeZone = 'UTC'")
    limit = options.memory_limit or (DISK_MEMORY_LIMIT if on_disk else None)
    if limit:
        connection.execute("SET memory_limit = $limit", {"limit": limit})
    if options.threads:
        connection.execute("SET threads = $threads", {"threads": options.threads})


def open_store(
    connection: duckdb.DuckDBPyConnection, options: StoreOptions, paths: Sequence[Path]
) -> OpenedStore:
    """Attach ``store``: in memory (empty), a valid cache (read-only), or a new file to fill.

    For a new file the caller loads the calls, then calls ``seal_store``.
    """
    kind = choose_kind(options, paths)
    configure(connection, options, kind == "disk")
    if kind == "memory":
        connection.execute("ATTACH ':memory:' AS store (COMPRESS)")
        return OpenedStore("memory", None, cached=False, key="")
    for path in paths:
        if not Path(path).is_file():
            # Let load_calls name the missing file, as it does in memory.
            connection.execute("ATTACH ':memory:' AS store (COMPRESS)")
            return OpenedStore("memory", None, cached=False, key="")
    key = source_key(paths)
    path = options.path or default_cache_path(paths)
    # Beyond memory_limit, DuckDB spills here (not into the working directory's .tmp).
    spill = _spill_directory(path)
    connection.execute("SET temp_directory = $spill", {"spill": str(spill)})
    if path.is_file() and _attach_if_current(connection, path, key):
        return OpenedStore("disk", path, cached=True, key=key)
    partial = _partial(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        connection.execute(f"ATTACH '{_literal(partial)}' AS store")
    except (OSError, duckdb.Error) as error:
        raise StoreError(
            f"{path}: cannot create the on-disk call store ({error}); "
            "give a writable --store-path or use --store memory"
        ) from None
    return OpenedStore("disk", path, cached=False, key=key)


def fill_store(
    connection: duckdb.DuckDBPyConnection, opened: OpenedStore, load: Callable[[], int]
) -> int:
    """Fill a new store with ``load()`` (which creates the ``calls`` view) and seal it, or
    only point the view at a cached one; returns the number of calls.

    A failed load discards the partial file; running out of memory is a ``StoreError``.
    """
    if opened.cached:
        connection.execute("CREATE OR REPLACE VIEW calls AS SELECT * FROM store.calls")
        row = connection.execute("SELECT count(*) FROM calls").fetchone()
        return int(row[0]) if row else 0
    try:
        loaded = load()
    except duckdb.OutOfMemoryException as error:
        discard_partial(connection, opened)
        where = opened.path or "the in-memory store"
        raise StoreError(
            f"{where}: out of memory while loading the calls "
            f"({str(error).splitlines()[0]}); raise --memory-limit"
        ) from None
    except BaseException:
        discard_partial(connection, opened)
        raise
    seal_store(connection, opened)
    return loaded


def seal_store(connection: duckdb.DuckDBPyConnection, opened: OpenedStore) -> None:
    """Record the key in the new file, move it into place and reopen it read-only."""
    if opened.kind != "disk" or opened.cached or opened.path is None:
        return
    connection.execute("CREATE TABLE store.store_meta AS SELECT $key AS key", {"key": opened.key})
    connection.execute("CHECKPOINT store")
    connection.execute("DETACH store")
    os.replace(_partial(opened.path), opened.path)
    connection.execute(f"ATTACH '{_literal(opened.path)}' AS store (READ_ONLY)")


def close_store(connection: duckdb.DuckDBPyConnection, opened: OpenedStore | None) -> None:
    """Close the connection and remove what spilled to disk; the cache file stays."""
    connection.close()
    if opened is not None and opened.kind == "disk" and opened.path is not None:
        shutil.rmtree(_spill_directory(opened.path), ignore_errors=True)


def discard_partial(connection: duckdb.DuckDBPyConnection, opened: OpenedStore) -> None:
    """After a failed load: drop the half-built file, so nothing can ever mistake it for a cache."""
    if opened.kind != "disk" or opened.cached or opened.path is None:
        return
    with contextlib.suppress(duckdb.Error):
        connection.execute("DETACH store")
    _partial(opened.path).unlink(missing_ok=True)
    Path(str(_partial(opened.path)) + ".wal").unlink(missing_ok=True)
    shutil.rmtree(_spill_directory(opened.path), ignore_errors=True)


def _attach_if_current(connection: duckdb.DuckDBPyConnection, path: Path, key: str) -> bool:
    try:
        connection.execute(f"ATTACH '{_literal(path)}' AS store (READ_ONLY)")
    except duckdb.Error:
        return False
    try:
        row = connection.execute("SELECT key FROM store.store_meta").fetchone()
    except duckdb.Error:
        row = None
    if row is not None and row[0] == key:
        return True
    connection.execute("DETACH store")
    return False


def _partial(path: Path) -> Path:
    return path.with_name(f"{path.name}.{os.getpid()}.partial")


def _spill_directory(path: Path) -> Path:
    return path.with_name(f"{path.name}.{os.getpid()}.spill")


def _literal(path: Path) -> str:
    """A path as the body of a SQL string literal (ATTACH takes no bound parameter)."""
    return str(path).replace("'", "''")
