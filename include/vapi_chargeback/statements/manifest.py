"""``manifest.json``: the index a reader checks before trusting a published month.

It lists every file of the month with its sha256, size and number of statement
lines, plus the period, provenance, totals and reconciliation. It is written last: a
month counts as published only when its manifest exists and every listed file
matches its hash (``storage.read_published``).

It also records where the month stands in its close (DESIGN §3): ``status`` (draft or
final), ``version``, the ``statement_ids`` (org and per cost center), the approval
(``approved_by``, ``approved_at``, ``approved_run_id``), a restatement's reason and the
``invoice`` tie-out (``null``: not tied to an invoice). With a reporting currency, an ``fx``
block states the rate (value, date, rule, source) and the converted total and cost
centers (``fx.manifest_block``); without one the key is left out, so the manifests of
USD-only configs keep their bytes. Its ``key_figures`` (``statements.keyfigures``: the
org's and each cost center's total, % allocated, change vs the previous month and unit
costs) are what the Summary sheets show, for ``make demo`` and the mails to quote. Its
``variance`` block (``variance.manifest_block``; ``null`` without a previous published month)
holds the month-over-month drivers: each cost center's and the org's effects and the largest
movers, for the same readers. Its ``names`` block (:func:`names_block`) holds the sha256 of
the run's assistant names snapshot, how many names each source gave and, if
``GET /assistant`` failed, why. Where the ``verify`` step ran, a ``verification`` block
(``verify.summary.manifest_block``) holds its verdict, what matched, the recount's file and
sha256, Other by type per cost center and the sha256 of every ``GET /call`` page read;
elsewhere the key is left out. ``close.lifecycle.MonthState``
reads these fields back; they were added without a new ``format_version`` because a
manifest without them reads as what it was, a draft version 1 not tied to an invoice.

Deterministic by construction: sorted keys, two-space indent, UTF-8, a final newline,
money as decimal strings (``"1234.50"``, never a float), and no time but the period's
own and the approval's. The same Statement therefore gives the same manifest bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vapi_chargeback.fx import manifest_block as fx_manifest_block
from vapi_chargeback.statement import NamesSnapshot, Statement
from vapi_chargeback.statements.formatting import minutes_text, money_text
from vapi_chargeback.statements.keyfigures import manifest_key_figures
from vapi_chargeback.statements.totals import StatementTotals
from vapi_chargeback.variance import manifest_block as variance_block
from vapi_chargeback.variance import month_over_month
from vapi_chargeback.verify.summary import manifest_block as verification_block

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
"""Bump when a field changes meaning; readers refuse versions they do not know."""
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileEntry:
    path: str
    """Relative to the month directory, ``/``-separated."""
    sha256: str
    bytes: int
    rows: int
    """Statement lines the file carries (CSV data rows, workbook Detail lines)."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(directory: Path, relative: str, rows: int) -> FileEntry:
    path = directory / relative
    return FileEntry(relative, sha256_file(path), path.stat().st_size, rows)


def build_manifest(
    statement: Statement, totals: StatementTotals, files: Sequence[FileEntry]
) -> bytes:
    source = statement.provenance
    check = statement.reconciliation
    document: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "status": statement.status,
        "version": statement.version,
        "statement_ids": statement.statement_ids.manifest_block(),
        "approved_by": statement.approved_by,
        "approved_at": statement.approved_at.isoformat() if statement.approved_at else None,
        "approved_run_id": statement.approved_run_id,
        "restatement_reason": statement.restatement_reason,
        "invoice": statement.invoice.manifest_block() if statement.invoice else None,
        "period": statement.period,
        "timezone": statement.timezone,
        "period_start": statement.period_start.isoformat(),
        "period_end": statement.period_end.isoformat(),
        "currency": statement.currency,
        "components": list(statement.components),
        "run_id": source.run_id if source else None,
        "inputs_sha256": source.inputs_sha256 if source else None,
        "config_sha256": source.config_sha256 if source else None,
        "mapping_sha256": source.mapping_sha256 if source else None,
        "responses_sha256": dict(source.responses_sha256) if source else {},
        "generated_by": source.generated_by if source else None,
        "files": {
            entry.path: {"sha256": entry.sha256, "bytes": entry.bytes, "rows": entry.rows}
            for entry in files
        },
        "totals": {
            "cost_usd": money_text(totals.total.cost_usd),
            "allocated_usd": money_text(totals.allocated_usd),
            "unallocated_usd": money_text(totals.unallocated_usd),
            "shared_usd": money_text(totals.total.shared_usd),
            "corrections_usd": money_text(totals.total.corrections_usd),
            "adjustments_usd": money_text(totals.total.adjustments_usd),
            "calls": totals.total.calls,
            "minutes": minutes_text(totals.total.minutes),
            "lines": len(statement.lines),
            "lines_by_charged_by": charged_by_counts(statement),
            "cost_by_cost_center_usd": {
                center: money_text(item.cost_usd) for center, item in totals.by_center.items()
            },
        },
        "key_figures": manifest_key_figures(statement),
        "variance": variance_block(month_over_month(statement)),
        "reconciliation": None
        if check is None
        else {
            "org_total_usd": money_text(check.org_total_usd),
            "shared_total_usd": money_text(check.shared_total_usd),
            "lines_total_usd": money_text(check.lines_total_usd),
            "corrections_usd": money_text(check.corrections_usd),
            "adjustments_usd": money_text(check.adjustments_usd),
            "difference_usd": money_text(check.difference_usd),
            "ok": check.ok,
            "invoice_id": check.invoice_id,
            "invoice_usd": None if check.invoice_usd is None else money_text(check.invoice_usd),
        },
    }
    if check is not None and check.empty_month_expected:
        document["reconciliation"]["empty_month_expected"] = True
    fx = fx_manifest_block(statement)
    if fx is not None:
        document["fx"] = fx
    if statement.names is not None:
        document["names"] = names_block(statement.names)
    if statement.verification is not None:
        document["verification"] = verification_block(statement.verification)
    text = json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def charged_by_counts(statement: Statement) -> dict[str, int]:
    """Direct lines per rule that charged them (``mapping``, ``variable``,
    ``rule:metadata``, ``rule:name``): how much of the month the rules allocate."""
    counts: dict[str, int] = {}
    for line in statement.lines:
        if line.charged_by:
            counts[line.charged_by] = counts.get(line.charged_by, 0) + 1
    return dict(sorted(counts.items()))


def names_block(snapshot: NamesSnapshot) -> dict[str, Any]:
    """The snapshot's sha256, its names counted by source (``mapping``, ``api``,
    ``earlier``, ``id``) and the listing's error (``null`` when it worked)."""
    counts: dict[str, int] = {}
    for source in snapshot.sources.values():
        kind = source.split(":", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
    return {
        "sha256": snapshot.sha256,
        "by_source": dict(sorted(counts.items())),
        "api_error": snapshot.api_error,
    }
