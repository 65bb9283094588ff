"""The run's work folder read back: what earlier steps left there, held to what they recorded.

A step hands the next one small facts (file names, sha256, byte spans) and leaves the
large things — the plan, the raw API responses, the statement — in the work folder. Every
read here checks them again: an input edited after planning, a raw response altered or
answering other queries, a statement changed between steps is a :class:`RunStateError`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from vapi_chargeback import statement_json
from vapi_chargeback.analytics.checked import checked_fingerprint
from vapi_chargeback.analytics.checks import check_results
from vapi_chargeback.analytics.decode import decode_fast, decode_json, result_from_json
from vapi_chargeback.analytics.models import AnalyticsQuery, AnalyticsQueryResult
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.plan import Plan
from vapi_chargeback.statement import Statement

StoragePath = Any
"""A ``upath.UPath`` or Airflow's ``ObjectStoragePath`` (a proxy with the same API)."""

PLAN_FILE = "plan.json"
HELD_BODY_BYTES = 256 << 20
"""Raw bodies a :class:`StoredResults` keeps read at most (beyond the one in use)."""
_RESULTS = TypeAdapter(list[AnalyticsQueryResult])


class RunStateError(PermanentError):
    """The run's work folder no longer matches what its earlier steps recorded (inputs edited
    after planning, a raw response altered): clear the run and plan it again."""


class FetchedBatch(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    file: str
    sha256: str
    size: int
    attempts: int
    status_code: int
    spans: dict[str, tuple[int, int]] = Field(default_factory=dict)
    """Query name → byte span of its result in the file, so later steps decode one query at a
    time; empty for batches fetched before spans were recorded (then decoded whole)."""
    pieces: dict[str, list[str]] = Field(default_factory=dict)
    """Query name → the results answering it together, for a query the API refused for its
    rows and that was asked in pieces (``analytics.row_cap``); empty when none was."""
    checked: str = ""
    """The fingerprint of the rules and queries the fetch checked every row of this body by
    (``analytics.checked``); empty in records of older runs or from anywhere else."""


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_plan(work: StoragePath) -> Plan:
    return Plan.model_validate_json((work / PLAN_FILE).read_bytes())


class StoredResults(Mapping[str, AnalyticsQueryResult]):
    """Results by query name, re-read from the stored raw bytes and held to the plan again.

    The hash proves the bytes are those fetched; parsing and checking them with the same
    rules as the fetch means a raw file from anywhere else (an older client, a restored
    backup) gets no easier treatment.

    The row checks alone are skipped, for a body whose record carries the fingerprint
    (:attr:`FetchedBatch.checked`) that this code gives the batch's planned queries
    (``analytics.checked.checked_fingerprint``): the fetch checked these very bytes against
    these queries with this source under this Python, so a second check could only pass
    again. A record without it, a tampered or older one, a query planned otherwise, any
    edit to the rules or another Python, and every row is checked again. Either way the
    results are decoded and held to their names and to the batch's queries.

    A query is decoded when it is looked up, from its span of the body, and not kept: a
    large org's month is hundreds of thousands of rows, several times its bytes as Python
    objects, while allocation needs one query at a time and reconciliation only the small
    org total. Likewise a body is read (and its hash checked) when one of its queries is
    first looked up, and bodies are held only up to :data:`HELD_BODY_BYTES`, the least
    recently read dropped first: a 20,000-assistant month is gigabytes of responses, of
    which reconciliation reads one batch. Batches fetched without spans are read and decoded
    whole, as before.
    """

    def __init__(self, work: StoragePath, plan: Plan, fetched: Sequence[FetchedBatch]) -> None:
        self._plan = plan
        self._work = work
        self._digests: dict[str, str] = {}
        self._bodies: OrderedDict[str, bytes] = OrderedDict()
        self._spans: dict[str, tuple[str, int, int]] = {}
        self._decoded: dict[str, AnalyticsQueryResult] = {}
        self._pieces: dict[str, list[str]] = {}
        self._trusted: set[str] = set()
        """Files whose record proves this code checked every row (see the class docstring)."""
        for batch in sorted(fetched, key=lambda item: item.index):
            if not 0 <= batch.index < len(plan.batches):
                raise RunStateError(
                    f"raw response {batch.file} is for batch {batch.index}, not in the plan"
                )
            names = plan.batches[batch.index]
            queries = [plan.query(name) for name in names]
            self._digests[batch.file] = batch.sha256
            if batch.checked and batch.checked == checked_fingerprint(queries):
                self._trusted.add(batch.file)
            if not batch.spans:
                raw = self._read(batch.file)
                check = batch.file not in self._trusted
                self._decoded.update(_decode_batch(raw, batch, queries, check=check))
                continue
            answered = [part for name in names for part in batch.pieces.get(name, [name])]
            if sorted(batch.spans) != sorted(answered) or not set(batch.pieces) <= set(names):
                raise RunStateError(
                    f"raw response {batch.file} does not answer exactly the queries of batch "
                    f"{batch.index}: {sorted(batch.spans)}"
                )
            for name, (start, end) in batch.spans.items():
                self._spans[name] = (batch.file, start, end)
            self._pieces.update(batch.pieces)

    def _read(self, file: str) -> bytes:
        """The stored body ``file``, held to its recorded sha256 (see the class docstring)."""
        raw = self._bodies.get(file)
        if raw is not None:
            self._bodies.move_to_end(file)
            return raw
        raw = bytes((self._work / "raw" / file).read_bytes())
        if hashlib.sha256(raw).hexdigest() != self._digests[file]:
            raise RunStateError(f"raw response {file} does not match its recorded sha256")
        self._bodies[file] = raw
        while len(self._bodies) > 1 and sum(map(len, self._bodies.values())) > HELD_BODY_BYTES:
            self._bodies.popitem(last=False)
        return raw

    def __getitem__(self, name: str) -> AnalyticsQueryResult:
        if name in self._decoded:
            return self._decoded[name]
        if name not in self._pieces:
            return self._stored(name, name)
        pieces = [self._stored(piece, name) for piece in self._pieces[name]]
        rows = [row for piece in pieces for row in piece.result]
        return pieces[0].model_copy(update={"name": name, "result": rows})

    def _stored(self, part: str, query: str) -> AnalyticsQueryResult:
        """The stored result named ``part``, held to the planned ``query`` it answers."""
        file, start, end = self._spans[part]
        span = self._read(file)[start:end]
        trusted = file in self._trusted
        result = result_from_json(decode_fast(span) if trusted else decode_json(span))
        if result.name != part:
            raise RunStateError(
                f"raw response {file} holds {result.name!r} where {part!r} was recorded"
            )
        if not trusted:
            check_results([self._plan.query(query)], [result], request=f"stored {file}")
        return result

    def __iter__(self) -> Iterator[str]:
        pieces = {piece for parts in self._pieces.values() for piece in parts}
        return iter(
            [*self._decoded, *self._pieces, *(name for name in self._spans if name not in pieces)]
        )

    def __len__(self) -> int:
        return len(list(iter(self)))


def _decode_batch(
    raw: bytes, batch: FetchedBatch, queries: list[AnalyticsQuery], *, check: bool
) -> dict[str, AnalyticsQueryResult]:
    """A whole stored batch, its rows checked like the fetch checks them unless ``check``
    is false (the fetch provably did, see :class:`StoredResults`)."""
    parsed = _RESULTS.validate_python(decode_json(raw))
    by_name = {result.name: result for result in parsed}
    if sorted(by_name) != sorted(query.name for query in queries) or len(parsed) != len(queries):
        raise RunStateError(
            f"raw response {batch.file} does not answer exactly the queries of batch "
            f"{batch.index}: {sorted(by_name)}"
        )
    ordered = [by_name[query.name] for query in queries]
    if check:
        check_results(queries, ordered, request=f"stored {batch.file}")
    return {result.name: result for result in ordered}


def load_statement(work: StoragePath, step: Mapping[str, Any]) -> Statement:
    """The statement a step left in ``work``, held to its sha256; its breakdowns stay in
    their files (``breakdown_files``) until a cost center's are looked up."""
    raw = (work / step["statement"]).read_bytes()
    if hashlib.sha256(raw).hexdigest() != step["sha256"]:
        raise RunStateError(f"{step['statement']} changed since the previous step wrote it")
    return statement_json.loads(raw, work)
