"""What the fetch checked a stored batch with, so that a later read can trust the check.

The fetch decodes and checks every row of a batch (``check=True``) before it stores the
body; the steps after it read the same bytes back (``workfolder.StoredResults``). Checking
them again is a second pass over every row, at 5M calls a month about 28 % of the
re-read's cost. That check can be skipped only where it provably finds nothing new: the
same bytes (the body's sha256, verified on every read), the same queries, and the same
rules. :func:`checked_fingerprint` names the last two; the fetch records it beside the
sha256 and a reader compares it with its own.

The rules are the source of every module whose code decides what a checked row is —
decoding JSON to values, the row checks, the response reader and the client that run
them, the row-cap splitting that sends them — and the Python that runs that code (its
``json`` and ``decimal``): any edit to one of them, or another interpreter, gives a
different fingerprint, and the reader then checks every row again. The rules are files,
not a version number someone must remember to raise; a module the check comes to depend
on must join :data:`RULE_SOURCES` (a test names those it depends on now)."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from vapi_chargeback.analytics.models import AnalyticsQuery

RULE_SOURCES = (
    "checks.py",
    "client.py",
    "decode.py",
    "models.py",
    "numbers.py",
    "responses.py",
    "row_cap.py",
    "checked.py",
)
"""The files of this package whose code decides which rows pass the fetch's check."""


def rules_version(sources: Iterable[Path], python: str = sys.version) -> str:
    """sha256 over ``python`` and the bytes of each of ``sources`` (in order, with its name)."""
    digest = hashlib.sha256(python.encode())
    for path in sources:
        data = path.read_bytes()
        digest.update(f"\n{path.name} {len(data)}\n".encode())
        digest.update(data)
    return digest.hexdigest()


RULES_VERSION = rules_version(Path(__file__).with_name(name) for name in RULE_SOURCES)
"""The rules of this very code, computed once at import."""


def checked_fingerprint(queries: Sequence[AnalyticsQuery], rules: str = RULES_VERSION) -> str:
    """What checking a batch of ``queries`` (in the order sent) by ``rules`` promises.

    A piece of a query refused for its rows (``row_cap.halve``) differs from it only in its
    name and the bounds of its time range, which no row check reads, so the planned queries name
    what was checked; ``row_cap.py`` is among the rules.
    """
    digest = hashlib.sha256(rules.encode())
    for query in queries:
        digest.update(b"\n")
        digest.update(query.model_dump_json(by_alias=True).encode())
    return digest.hexdigest()
