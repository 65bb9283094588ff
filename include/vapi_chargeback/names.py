"""The name each assistant is shown under, and where it came from: the run's names snapshot.

Vapi lists only the assistants that still exist, but a month's calls may come from one
deleted since, so names come from several places, in this precedence:

1. ``mapping`` — the mapping CSV's optional ``assistant_name`` column: finance's word wins.
2. ``api`` — ``GET /assistant``, listed in the fetch stage (:func:`fetch_assistants`).
3. ``earlier:{YYYY-MM}`` — the ``assistant_name`` column of the latest earlier published
   month that names it (up to ``EARLIER_MONTHS`` back), so a deleted assistant keeps the
   name it was booked under.
4. ``id`` — none of these: the line's ``assistant_name`` is its id, so every sheet, chart
   and mail that labels an assistant by name shows something a reader can search for,
   and the snapshot's source says it is no name. An id shown as a name is never taken
   up as an earlier month's name.

A failed listing does not lose the month: names then come from the mapping and earlier
months, the log warns and the snapshot records ``api_error``. The listing is stored in
the run's work folder, and so is the snapshot the first allocate builds from it, so a
retried allocate shows the same names even if a month was published in between; planning
the run again (a cleared run) drops both (:func:`forget_names`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from vapi_chargeback.analytics.assistants import AssistantListing, list_assistants
from vapi_chargeback.analytics.errors import VapiAnalyticsError
from vapi_chargeback.mapping import AssistantMapping, canonical_assistant_id
from vapi_chargeback.mapping_rules import ListedAssistant, MappingRule, RuleBook
from vapi_chargeback.period import parse_month
from vapi_chargeback.published import PublishedSetError, read_published_file
from vapi_chargeback.statement import ChargebackLine, NamesSnapshot
from vapi_chargeback.statements.csv import StatementCsvError, csv_name, read_csv
from vapi_chargeback.statements.manifest import MANIFEST_NAME

if TYPE_CHECKING:
    from vapi_chargeback.analytics.client import VapiAnalyticsClient

log = logging.getLogger(__name__)

ASSISTANTS_FILE = "assistants.json"
"""In the run's work folder: what ``GET /assistant`` answered (or why it did not)."""
NAMES_FILE = "names.json"
"""In the run's work folder: the snapshot the statement's lines were named from."""
EARLIER_MONTHS = 12
"""How far back published months are read for names (a gap of months is bridged, and
each month carries the names it inherited, so a year reaches back for ever)."""
MAPPING, API, ID = "mapping", "api", "id"
EARLIER_PREFIX = "earlier:"

StoragePath = Any
"""A ``upath.UPath`` or Airflow's ``ObjectStoragePath`` (the work folder, the output)."""


class StoredAssistants(BaseModel):
    """``assistants.json``: assistant id → name as listed, or the listing's error; and the
    listed assistants with their metadata, held to ``sha256`` (the snapshot rules apply as
    of: metadata and names have no history in the API)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    names: dict[str, str] | None
    """``None`` when the listing failed."""
    error: str | None = None
    requests: int = 0
    assistants: list[ListedAssistant] | None = None
    """Ordered by id; ``None`` when the listing failed or was stored before metadata was."""
    sha256: str | None = None
    """sha256 of ``assistants`` as canonical JSON (:func:`assistants_sha256`)."""


def fetch_assistants(client: VapiAnalyticsClient, work: StoragePath) -> StoredAssistants:
    """List the org's assistants once per run and keep the answer in ``work``.

    A listing already stored is kept (a retried task names lines as the first did). Any
    client error — after its own retries — is recorded instead of raised: the month's
    figures do not depend on names. A recorded failure is tried again by a retried task.
    """
    path = work / ASSISTANTS_FILE
    if path.exists():
        kept = read_assistants(path.read_bytes(), str(path))
        if kept.names is not None:
            return kept
    try:
        stored = stored_listing(list_assistants(client))
        log.info("GET /assistant listed %d named assistants", len(stored.names or {}))
    except VapiAnalyticsError as error:
        stored = StoredAssistants(names=None, error=str(error))
        log.warning(
            "assistant names: GET /assistant failed, so names come from the mapping and"
            " earlier months only (the snapshot records this): %s",
            error,
        )
    path.write_bytes(stored.model_dump_json(indent=1).encode())
    return stored


def forget_names(work: StoragePath) -> None:
    """Drop a listing and snapshot left by an earlier attempt of a run planned again (a
    cleared Airflow run keeps its id, so its work folder): the new attempt lists and names
    afresh, with the mapping as it is now."""
    for name in (ASSISTANTS_FILE, NAMES_FILE):
        if (work / name).exists():
            (work / name).unlink()


def run_rules(work: StoragePath, rules: list[MappingRule]) -> RuleBook:
    """The config's ``rules`` over the run's stored assistants snapshot (none listed when
    the listing failed or is missing: then no rule matches)."""
    path = work / ASSISTANTS_FILE
    stored = read_assistants(path.read_bytes(), str(path)) if rules and path.exists() else None
    listed = stored.assistants if stored is not None and stored.assistants is not None else []
    return RuleBook(rules, {item.id: item for item in listed})


def stored_listing(listing: AssistantListing) -> StoredAssistants:
    """A listing as ``assistants.json`` keeps it: printable names, canonical ids, metadata."""
    names = {canonical_assistant_id(item.id): _printable(item.name) for item in listing.assistants}
    named = {key: name for key, name in sorted(names.items()) if name}
    listed = sorted(
        (
            ListedAssistant(
                id=canonical_assistant_id(item.id),
                name=_printable(item.name),
                metadata=item.metadata,
            )
            for item in listing.assistants
        ),
        key=lambda item: item.id,
    )
    return StoredAssistants(
        names=named,
        requests=listing.requests,
        assistants=listed,
        sha256=assistants_sha256(listed),
    )


def assistants_sha256(assistants: Sequence[ListedAssistant]) -> str:
    """sha256 of the listed assistants' canonical JSON (keys sorted, no spaces, UTF-8)."""
    document = [item.model_dump(mode="json") for item in assistants]
    return hashlib.sha256(
        json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()


def read_assistants(raw: bytes, where: str) -> StoredAssistants:
    """A stored listing, held to its sha256 (``ValueError`` naming ``where`` otherwise)."""
    stored = StoredAssistants.model_validate_json(raw)
    if stored.assistants is not None and assistants_sha256(stored.assistants) != stored.sha256:
        raise ValueError(f"{where}: the assistants snapshot does not match its sha256")
    return stored


def _printable(name: str | None) -> str:
    """A listed name as one line of text: control characters (which no workbook cell can
    hold) and runs of whitespace become single spaces."""
    text = "".join(character if character.isprintable() else " " for character in name or "")
    return " ".join(text.split())


def resolve(
    assistant_ids: Iterable[str],
    *,
    mapping: Mapping[str, str],
    api: StoredAssistants | None,
    earlier: Sequence[tuple[str, Mapping[str, str]]],
) -> NamesSnapshot:
    """The snapshot for ``assistant_ids`` (mapping > API > earlier months > the id itself).

    ``mapping`` and ``api`` names are keyed by canonical id; ``earlier`` is (month, names)
    newest first. ``api`` ``None``: no listing was made (runs planned before names).
    """
    names: dict[str, str] = {}
    sources: dict[str, str] = {}
    listed = api.names if api is not None and api.names is not None else {}
    for assistant_id in sorted(set(assistant_ids)):
        key = canonical_assistant_id(assistant_id)
        if key in mapping:
            names[assistant_id], sources[assistant_id] = mapping[key], MAPPING
        elif key in listed:
            names[assistant_id], sources[assistant_id] = listed[key], API
        else:
            month = next((month for month, known in earlier if key in known), None)
            if month is None:
                names[assistant_id], sources[assistant_id] = assistant_id, ID
            else:
                names[assistant_id] = dict(earlier)[month][key]
                sources[assistant_id] = EARLIER_PREFIX + month
    api_error = api.error if api is not None else None
    return NamesSnapshot(names, sources, snapshot_sha256(names, sources, api_error), api_error)


def snapshot_sha256(
    names: Mapping[str, str], sources: Mapping[str, str], api_error: str | None
) -> str:
    """sha256 of the snapshot's canonical JSON (keys sorted, no spaces, UTF-8)."""
    return hashlib.sha256(_canonical(names, sources, api_error)).hexdigest()


def _canonical(
    names: Mapping[str, str], sources: Mapping[str, str], api_error: str | None
) -> bytes:
    document = {"api_error": api_error, "names": dict(names), "sources": dict(sources)}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def earlier_names(
    output: StoragePath, period: str, wanted: Iterable[str]
) -> list[tuple[str, dict[str, str]]]:
    """(month, canonical id → name) of the published months before ``period``, newest
    first, read back until every ``wanted`` id (canonical) is named or ``EARLIER_MONTHS``
    are read; none when nothing is wanted.

    Names that are an id shown in place of a name are left out. A month that exists but
    cannot be read verified is skipped with a warning: names are no reason to stop a run.
    """
    missing = set(wanted)
    first = parse_month(period)
    year, month = first.year, first.month
    found = []
    for back in range(1, EARLIER_MONTHS + 1):
        if not missing:
            break
        earlier_year, earlier_month = divmod(year * 12 + month - 1 - back, 12)
        earlier = f"{earlier_year:04d}-{earlier_month + 1:02d}"
        if not (output / earlier / MANIFEST_NAME).exists():
            continue
        try:
            _, data = read_published_file(output, earlier, csv_name(earlier))
            lines = read_csv(data, f"the published CSV of {earlier}").lines
        except (PublishedSetError, StatementCsvError, OSError) as error:
            log.warning("assistant names: %s skipped (%s)", earlier, error)
            continue
        known = {
            canonical_assistant_id(line.assistant_id): line.assistant_name
            for line in lines
            if line.assistant_id
            and line.assistant_name
            and line.assistant_name != line.assistant_id
        }
        if known:
            found.append((earlier, known))
            missing -= known.keys()
    return found


def run_names(
    work: StoragePath,
    output: StoragePath,
    period: str,
    last_day: date,
    lines: Sequence[ChargebackLine],
    mapping: AssistantMapping,
) -> NamesSnapshot:
    """The run's snapshot for the assistants on ``lines``: the one stored in ``work`` by
    an earlier try of this step, else resolved from the mapping (as of ``last_day``), the
    stored listing and earlier months, and stored."""
    ids = {line.assistant_id for line in lines if line.assistant_id}
    path = work / NAMES_FILE
    if path.exists():
        stored = read_snapshot(path.read_bytes(), str(path))
        if ids <= stored.names.keys():
            return stored
    listing = work / ASSISTANTS_FILE
    api = read_assistants(listing.read_bytes(), str(listing)) if listing.exists() else None
    by_mapping = mapping.names(last_day)
    listed = api.names or {} if api is not None else {}
    wanted = {canonical_assistant_id(i) for i in ids} - by_mapping.keys() - listed.keys()
    snapshot = resolve(
        ids, mapping=by_mapping, api=api, earlier=earlier_names(output, period, wanted)
    )
    path.write_bytes(snapshot_bytes(snapshot))
    return snapshot


def named_lines(lines: Sequence[ChargebackLine], snapshot: NamesSnapshot) -> list[ChargebackLine]:
    """``lines`` with ``assistant_name`` from the snapshot wherever a line has an assistant."""
    names = snapshot.names
    return [
        _named(line, names[line.assistant_id]) if line.assistant_id in names else line
        for line in lines
    ]


def _named(line: ChargebackLine, name: str) -> ChargebackLine:
    """``replace(line, assistant_name=name)``, its fields copied as they are: a line is
    validated when made and a name is text, and ``replace`` (every field passed through
    ``__init__`` again) was a quarter of the time a 5M-call month spent naming its 95,000
    lines. A ``ChargebackLine`` that checks itself (``__post_init__``) or has no
    ``__dict__`` goes through ``replace``."""
    if _COPY_FIELDS and type(line) is ChargebackLine:
        named = _new_line(ChargebackLine)
        fields = named.__dict__
        fields.update(line.__dict__)
        fields["assistant_name"] = name
        return named
    return replace(line, assistant_name=name)


_COPY_FIELDS = not hasattr(ChargebackLine, "__post_init__") and not hasattr(
    ChargebackLine, "__slots__"
)
_new_line = object.__new__


def snapshot_bytes(snapshot: NamesSnapshot) -> bytes:
    """``names.json``: the snapshot with its sha256, as stored in the work folder."""
    document = {
        "names": snapshot.names,
        "sources": snapshot.sources,
        "api_error": snapshot.api_error,
        "sha256": snapshot.sha256,
    }
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False).encode()


def read_snapshot(raw: bytes, where: str) -> NamesSnapshot:
    """A stored snapshot, held to its sha256 (``ValueError`` naming ``where`` otherwise)."""
    document = json.loads(raw)
    names, sources, api_error = document["names"], document["sources"], document["api_error"]
    if snapshot_sha256(names, sources, api_error) != document["sha256"]:
        raise ValueError(f"{where}: the names snapshot does not match its sha256")
    return NamesSnapshot(names, sources, document["sha256"], api_error)
