"""``GET /assistant`` of the emulator: the org's assistants, filtered and listed like Vapi's.

Vapi lists assistants as a plain JSON array, newest ``createdAt`` first, at most ``limit``
(default 100, at most 1000) of them; the only way on is a ``createdAt``/``updatedAt``
window (``…Gt/Ge/Lt/Le``), there is no cursor. Deleted assistants are not listed, though
their calls remain: the reason chargeback also takes names from the mapping and from
earlier months.

Where the assistants come from:

- ``vapi-emulator generate --out calls.parquet`` writes the synthetic org's answer
  beside the calls as ``calls.assistants.json`` (:func:`sidecar_path`): every assistant
  but the last pilot, deleted after its pilot, each created before its first call.
  The calls file itself is unchanged by this.
- ``vapi-emulator serve --assistants FILE``: an exported ``GET /assistant`` answer (a
  JSON array of Vapi ``Assistant`` objects) for replayed calls; served as exported,
  unknown fields included.
- Without ``--assistants``, ``serve`` reads the sidecar of each ``--calls`` file that has
  one; with none, ``GET /assistant`` answers ``[]``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from vapi_emulator.org import Assistant, DemoOrg
from vapi_emulator.resolve import QueryProblems

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
SIDECAR_SUFFIX = ".assistants.json"
MAX_ASSISTANTS_FILE_BYTES = 256 << 20
"""256 MiB: a 100,000-assistant export with full configurations is far below."""
DELETED_PILOTS = 1
PILOT_COST_CENTER = "operations"
"""The cost center the listed pilot's ``metadata.costCenter`` names (no mapping row does)."""
"""The demo org's last assistants, not listed: deleted after their pilot, calls kept."""
TIME_PARAMETERS = tuple(
    f"{field}{bound}" for field in ("createdAt", "updatedAt") for bound in ("Gt", "Ge", "Lt", "Le")
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_MS = 86_400_000


class AssistantsFileError(ValueError):
    """An ``--assistants`` file that is not an exported ``GET /assistant`` answer."""


@dataclass(frozen=True)
class ListQuery:
    """The checked parameters of one ``GET /assistant``: limit and epoch-millisecond bounds."""

    limit: int = DEFAULT_LIMIT
    bounds: tuple[tuple[str, int], ...] = ()
    """``(parameter, epoch ms)`` for each time parameter given, e.g. ``("createdAtLt", …)``."""


@dataclass(frozen=True)
class _Listed:
    created_ms: int
    updated_ms: int
    body: dict[str, Any]


class AssistantDirectory:
    """The assistants ``GET /assistant`` lists, newest first (ties by id, descending)."""

    def __init__(self, assistants: Iterable[dict[str, Any]], source: str = "assistants") -> None:
        listed = []
        for index, body in enumerate(assistants):
            where = f"{source}: item {index}"
            if not isinstance(body, dict) or not isinstance(body.get("id"), str):
                raise AssistantsFileError(f"{where} is not an assistant object with an id")
            created = _instant(body.get("createdAt"), f"{where} ({body['id']}) createdAt")
            updated = body.get("updatedAt")
            updated_ms = created if updated is None else _instant(updated, f"{where} updatedAt")
            listed.append(_Listed(created, updated_ms, body))
        listed.sort(key=lambda item: (item.created_ms, item.body["id"]), reverse=True)
        self._listed = listed

    def __len__(self) -> int:
        return len(self._listed)

    @classmethod
    def from_file(cls, path: Path) -> AssistantDirectory:
        """An exported ``GET /assistant`` answer; ``AssistantsFileError`` names what is wrong."""
        try:
            size = path.stat().st_size
            if size > MAX_ASSISTANTS_FILE_BYTES:
                raise AssistantsFileError(
                    f"{path}: {size:,} bytes, over {MAX_ASSISTANTS_FILE_BYTES:,}; not an export"
                )
            data = json.loads(path.read_bytes())
        except (OSError, UnicodeDecodeError, ValueError) as error:
            if isinstance(error, AssistantsFileError):
                raise
            raise AssistantsFileError(f"{path}: cannot read it as JSON ({error})") from error
        if not isinstance(data, list):
            raise AssistantsFileError(
                f"{path}: a JSON {type(data).__name__}; expected the array GET /assistant returns"
            )
        return cls(data, str(path))

    @classmethod
    def beside(cls, calls: Sequence[Path]) -> AssistantDirectory:
        """The sidecars of these calls files that exist (see the module docstring)."""
        bodies: dict[str, dict[str, Any]] = {}
        for path in calls:
            sidecar = sidecar_path(path)
            if sidecar.is_file():
                for item in cls.from_file(sidecar)._listed:
                    bodies.setdefault(item.body["id"], item.body)
        return cls(bodies.values())

    def select(self, query: ListQuery) -> list[dict[str, Any]]:
        """At most ``query.limit`` assistants inside every bound, newest first."""
        chosen: list[dict[str, Any]] = []
        for item in self._listed:
            if len(chosen) >= query.limit:
                break
            if all(_inside(item, name, bound) for name, bound in query.bounds):
                chosen.append(item.body)
        return chosen


def parse_list_query(items: Iterable[tuple[str, str]]) -> ListQuery:
    """The query string's parameters checked like NestJS's validation pipe: every problem as
    one message of a ``QueryProblems`` (a 400)."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for name, value in items:
        if name not in ("limit", *TIME_PARAMETERS):
            problems.append(f"property {name} should not exist")
        elif name in seen:
            problems.append(f"{name} must be given once")
        seen[name] = value
    limit = DEFAULT_LIMIT
    if "limit" in seen:
        try:
            number = float(seen["limit"])
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number != int(number):
            problems.append("limit must be an integer number")
        elif not 0 <= number <= MAX_LIMIT:
            problems.append(
                f"limit must not be {'greater than 1000' if number > 0 else 'less than 0'}"
            )
        else:
            limit = int(number)
    bounds = []
    for name in TIME_PARAMETERS:
        if name in seen:
            try:
                bounds.append((name, _instant(seen[name], name)))
            except AssistantsFileError:
                problems.append(f"{name} must be a valid ISO 8601 date string")
    if problems:
        raise QueryProblems(problems)
    return ListQuery(limit, tuple(bounds))


def sidecar_path(calls: Path) -> Path:
    """Where ``generate`` puts the org's ``GET /assistant`` answer for a calls file."""
    return calls.with_name(calls.stem + SIDECAR_SUFFIX)


def org_assistants(org: DemoOrg, seed: int, first_call_ms: int) -> list[dict[str, Any]]:
    """The demo org as ``GET /assistant`` answers it: every assistant but the deleted pilots,
    created in id order on the days before ``first_call_ms`` (the first month's start), so
    none has a call before it exists; drawn from a generator of their own, leaving the
    calls' draws untouched."""
    rng = np.random.default_rng([seed, 2])
    count = len(org.assistants)
    days_before = np.sort(rng.integers(1, 400, count))[::-1]
    created = first_call_ms - days_before * _DAY_MS + rng.integers(0, _DAY_MS // 2, count)
    updated = created + rng.integers(1_000, 20 * _DAY_MS, count)
    listed = org.assistants[: count - DELETED_PILOTS]
    return [
        {
            "id": assistant.id,
            "orgId": org.org_id,
            "name": assistant.name,
            **_metadata(index, assistant),
            "createdAt": _iso(int(created[index])),
            "updatedAt": _iso(min(int(updated[index]), first_call_ms - 1)),
        }
        for index, assistant in enumerate(listed)
    ]


def _metadata(index: int, assistant: Assistant) -> dict[str, Any]:
    """Tags as teams put them on assistants, for chargeback's ``mapping_rules``: every other
    mapped assistant carries ``metadata.costCenter`` and ``metadata.team`` (its first
    mapping row's); the listed pilot carries ``costCenter: operations``, which runs it, so a
    metadata rule catches an assistant the mapping CSV does not map. The rest carry none."""
    if assistant.cost_center_id is None:
        return {"metadata": {"costCenter": PILOT_COST_CENTER}}
    if index % 2:
        return {}
    return {"metadata": {"costCenter": assistant.cost_center_id, "team": assistant.team}}


def write_sidecar(calls: Path, org: DemoOrg, seed: int, first_call_ms: int) -> Path:
    path = sidecar_path(calls)
    text = json.dumps(org_assistants(org, seed, first_call_ms), ensure_ascii=False, indent=1)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _inside(item: _Listed, name: str, bound: int) -> bool:
    value = item.created_ms if name.startswith("created") else item.updated_ms
    comparison = name[-2:]
    if comparison == "Gt":
        return value > bound
    if comparison == "Ge":
        return value >= bound
    if comparison == "Lt":
        return value < bound
    return value <= bound


def _instant(value: object, where: str) -> int:
    """An ISO 8601 instant as epoch milliseconds; a time without a zone is UTC, as on Vapi's
    servers."""
    if not isinstance(value, str):
        raise AssistantsFileError(f"{where}: {value!r} is not an ISO 8601 date string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise AssistantsFileError(f"{where}: {value!r} is not an ISO 8601 date string") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _iso(epoch_ms: int) -> str:
    moment = _EPOCH + timedelta(milliseconds=epoch_ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
