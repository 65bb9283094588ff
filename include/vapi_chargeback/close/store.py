"""The closed books on the output storage: month states, booked lines, pending corrections.

:mod:`~vapi_chargeback.close.lifecycle` decides over :class:`MonthState`; this module
reads those states from the published manifests and keeps the corrections that a final
month's rerun carries into a later month.

**Month state.** A month's state is what its verified manifest records. A month folder
whose set does not verify (files edited or lost) is never taken for "not published":
if its manifest still says ``final`` it is refused, since overwriting it could replace
what was booked; a damaged draft reads as the draft it says it was, so a rerun repairs
it as before.

**Pending corrections** live in ``{output}/_corrections/{YYYY-MM}/{corrected YYYY-MM}.json``:
the corrections of one final month carried into one later month, all of them in one
file. The receiving month's allocation appends them as ``correction:`` lines. Once that
month is final its files there are booked and never change (an approval checks that the
draft carries exactly the pending corrections); while it is not final, a later rerun of
the corrected month replaces them. So, for a corrected month, files in final months are
*carried* (already charged) and files in other months are *pending* (to be replaced).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vapi_chargeback.close.corrections import CorrectionLine
from vapi_chargeback.close.ids import StatementIds, statement_ids
from vapi_chargeback.close.lifecycle import FINAL, ManifestStateError, MonthState
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.period import parse_month
from vapi_chargeback.published import (
    OutputRoot,
    StorageLocation,
    _locate,
    read_folder,
    read_published,
    read_published_file,
    write_file,
)
from vapi_chargeback.statement import UNALLOCATED, ChargebackLine
from vapi_chargeback.statements.csv import csv_name, read_csv
from vapi_chargeback.statements.manifest import MANIFEST_NAME

CORRECTIONS_DIR = "_corrections"
CORRECTIONS_FORMAT_VERSION: Literal[1] = 1


class BooksError(PermanentError):
    """The closed books on storage are not what this code wrote: a final month that does
    not verify, a corrections file that cannot be read."""


def published_state(output_root: OutputRoot, period: str) -> MonthState | None:
    """The lifecycle state of ``period`` as published; ``None`` when it never was."""
    manifest = read_published(output_root, period)
    if manifest is not None:
        return MonthState.from_manifest(manifest)
    raw = _read_bytes(_locate(output_root), f"{period}/{MANIFEST_NAME}")
    if raw is None:
        return None
    try:
        recorded = json.loads(raw)
        state = MonthState.from_manifest(recorded) if isinstance(recorded, dict) else None
    except (ValueError, ManifestStateError):
        state = None
    if state is not None and state.status == FINAL:
        raise BooksError(
            f"{period} is final (v{state.version}) but its files do not verify against its"
            " manifest (see the warnings above): the booked set was altered. Restore it from"
            " a backup; no run replaces a final month it cannot verify"
        )
    return state


def state_reader(output_root: OutputRoot) -> Callable[[str], MonthState | None]:
    """``published_state`` of each month, read once per month for one decision."""
    seen: dict[str, MonthState | None] = {}

    def state_of(period: str) -> MonthState | None:
        if period not in seen:
            seen[period] = published_state(output_root, period)
        return seen[period]

    return state_of


def published_lines(
    output_root: OutputRoot, period: str, version: int | None = None
) -> tuple[dict[str, Any], list[ChargebackLine]]:
    """The manifest and the lines of ``period`` (or its kept ``version``) as booked: read
    back from the published CSV, held to the manifest's sha256."""
    manifest, data = read_published_file(output_root, period, csv_name(period), version=version)
    where = period if version is None else f"{period} v{version}"
    return manifest, read_csv(data, f"the published CSV of {where}").lines


def manifest_ids(manifest: dict[str, Any], prefix: str) -> StatementIds:
    """The statement ids a published manifest records; rebuilt for a manifest written
    before it recorded them (``prefix`` from the config, cost centers from its totals)."""
    period = manifest["period"]
    version = int(manifest.get("version", 1))
    block = manifest.get("statement_ids")
    if isinstance(block, dict):
        centers = block.get("cost_centers") or {}
        org = block.get("org")
        if isinstance(org, str) and isinstance(centers, dict):
            return StatementIds(
                prefix=org.removesuffix(f"-{period}-ORG-v{version}"),
                period=period,
                version=version,
                org=org,
                by_cost_center={str(key): str(value) for key, value in centers.items()},
            )
    charged = manifest.get("totals", {}).get("cost_by_cost_center_usd", {})
    return statement_ids(prefix, period, [c for c in charged if c != UNALLOCATED], version)


# Pending corrections.


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    line: ChargebackLine
    allocations: list[str]


class CorrectionsFile(BaseModel):
    """The corrections of one final month carried into one later month."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: Literal[1] = CORRECTIONS_FORMAT_VERSION
    corrected_period: str
    corrected_version: int = Field(ge=1)
    """The final version of the corrected month the deltas are relative to."""
    carried_to: str
    run_id: str = Field(min_length=1)
    """The rerun of the corrected month that computed them."""
    entries: list[_Entry]

    @property
    def relative_path(self) -> str:
        return corrections_path(self.carried_to, self.corrected_period)

    @property
    def corrections(self) -> list[CorrectionLine]:
        return [
            CorrectionLine(
                entry.line, self.corrected_period, entry.line.corrects, tuple(entry.allocations)
            )
            for entry in self.entries
        ]

    @property
    def lines(self) -> list[ChargebackLine]:
        return [entry.line for entry in self.entries]

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=2).encode("utf-8") + b"\n"


def corrections_path(carried_to: str, corrected_period: str) -> str:
    parse_month(carried_to)
    parse_month(corrected_period)
    return f"{CORRECTIONS_DIR}/{carried_to}/{corrected_period}.json"


def corrections_file(
    corrected_period: str,
    corrected_version: int,
    carried_to: str,
    run_id: str,
    corrections: Sequence[CorrectionLine],
) -> CorrectionsFile:
    return CorrectionsFile(
        corrected_period=corrected_period,
        corrected_version=corrected_version,
        carried_to=carried_to,
        run_id=run_id,
        entries=[
            _Entry(line=item.line, allocations=list(item.allocations)) for item in corrections
        ],
    )


def corrections_into(output_root: OutputRoot, carried_to: str) -> list[CorrectionsFile]:
    """Every corrections file carried into ``carried_to``, by corrected month."""
    location = _locate(output_root)
    folder = f"{CORRECTIONS_DIR}/{carried_to}"
    parse_month(carried_to)
    files = [
        _parse(raw, f"{folder}/{name}")
        for name, raw in _files_in(location, folder)
        if name.endswith(".json")
    ]
    for item in files:
        if (
            item.carried_to != carried_to
            or item.relative_path != f"{folder}/{item.corrected_period}.json"
        ):
            raise BooksError(
                f"{folder}: a file records corrections of {item.corrected_period} carried into"
                f" {item.carried_to}; it was moved or edited by hand: restore the folder"
            )
    return sorted(files, key=lambda item: item.corrected_period)


def corrections_of(output_root: OutputRoot, corrected_period: str) -> list[CorrectionsFile]:
    """Every corrections file of ``corrected_period``, in the order of the months receiving them."""
    parse_month(corrected_period)
    location = _locate(output_root)
    name = f"{corrected_period}.json"
    found = []
    for month in _subfolders(location, CORRECTIONS_DIR):
        raw = _read_bytes(location, f"{CORRECTIONS_DIR}/{month}/{name}")
        if raw is not None:
            item = _parse(raw, f"{CORRECTIONS_DIR}/{month}/{name}")
            if (item.carried_to, item.corrected_period) != (month, corrected_period):
                raise BooksError(
                    f"{CORRECTIONS_DIR}/{month}/{name} records corrections of"
                    f" {item.corrected_period} carried into {item.carried_to}; it was moved or"
                    " edited by hand: restore the folder"
                )
            found.append(item)
    return sorted(found, key=lambda item: item.carried_to)


def write_corrections(output_root: OutputRoot, item: CorrectionsFile) -> str:
    """Write (or replace) ``item`` whole; the sha256 of what was written."""
    return write_file(output_root, item.relative_path, item.to_json())


def remove_corrections(output_root: OutputRoot, item: CorrectionsFile) -> None:
    location = _locate(output_root)
    if isinstance(location, Path):
        (location.absolute() / item.relative_path).unlink(missing_ok=True)
    else:
        target = f"{location.path.rstrip('/')}/{item.relative_path}"
        if location.fs.exists(target):
            location.fs.rm_file(target)


@dataclass(frozen=True)
class CorrectionsOf:
    """The corrections files of one final month, split by where they stand."""

    carried: list[CorrectionsFile]
    """In final months, relative to the month's current version: already charged."""
    pending: list[CorrectionsFile]
    """In months that are not final: replaced by the next computation."""
    superseded: list[CorrectionsFile]
    """In final months, relative to an earlier version: charged before a restatement."""


def split_corrections(
    files: Sequence[CorrectionsFile],
    version: int,
    state_of: Callable[[str], MonthState | None],
) -> CorrectionsOf:
    carried, pending, superseded = [], [], []
    for item in files:
        state = state_of(item.carried_to)
        if state is None or state.status != FINAL:
            pending.append(item)
        elif item.corrected_version == version:
            carried.append(item)
        else:
            superseded.append(item)
    return CorrectionsOf(carried, pending, superseded)


def _parse(raw: bytes, where: str) -> CorrectionsFile:
    try:
        return CorrectionsFile.model_validate_json(raw)
    except ValidationError as error:
        raise BooksError(
            f"{where}: not a corrections file of this version ({error.error_count()}"
            f" problem(s): {error.errors()[0]['msg']}); it was edited by hand: restore it"
        ) from None


def _read_bytes(location: Path | StorageLocation, relative: str) -> bytes | None:
    if isinstance(location, Path):
        try:
            return (location / relative).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
    try:
        data = location.fs.cat_file(f"{location.path.rstrip('/')}/{relative}")
    except FileNotFoundError:
        return None
    return bytes(data)


def _files_in(location: Path | StorageLocation, folder: str) -> list[tuple[str, bytes]]:
    return [(name, data) for name, _, data in read_folder(location, folder)]


def _subfolders(location: Path | StorageLocation, folder: str) -> list[str]:
    if isinstance(location, Path):
        directory = location / folder
        if not directory.is_dir():
            return []
        return sorted(
            path.name
            for path in directory.iterdir()
            if path.is_dir() and not path.name.startswith(".")
        )
    fs = location.fs
    base = f"{location.path.rstrip('/')}/{folder}"
    if not fs.exists(base):
        return []
    return sorted(
        str(item).rstrip("/").rsplit("/", 1)[-1]
        for item in fs.ls(base, detail=False)
        if fs.isdir(item)
    )
