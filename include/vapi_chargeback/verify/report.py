"""What the verification leaves behind: the compact recount, the drift report, and the
Other column explained by type per cost center.

The recount is stored per (local day, assistant, variable value) with the rule that
charged it — a few thousand rows for a month of millions of calls — and the sha256 of
every page read, so an auditor can see what the recount rests on without the raw pages
(which are not kept). The drift report lists every difference, largest first.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from vapi_chargeback.allocate import NO_ASSISTANT_LINE
from vapi_chargeback.attribution import DIRECT, Attributor
from vapi_chargeback.split import exact_context, round_to_total
from vapi_chargeback.statement import (
    UNALLOCATED,
    ChargebackLine,
    OtherByType,
    Verification,
    VerificationDifference,
)
from vapi_chargeback.verify.compare import describe
from vapi_chargeback.verify.recount import MEASURES, Recount, other_types

ROUNDING = "rounding"
"""Of :class:`OtherByType`: the statement's Other minus its rounded types. Each line's Other
is its rounded cost minus its rounded components, so a cost center's Other differs from its
exact sum by a few cents of line rounding (more only where the recount itself differs)."""
ZERO = Decimal(0)
UNALLOCATED_PREFIX = "unallocated:"
REPORT_WORST = 20
"""Differences the report names in its ``worst`` sentences (all are listed below them)."""


def recount_csv(recount: Recount, attributor: Attributor) -> bytes:
    """The recount per (day, assistant, variable value), with who pays and by which rule."""
    types = other_types(recount.other.values())
    successes: dict[tuple[Any, ...], int] = {}
    for (key, evaluation), calls in recount.successes.items():
        if evaluation == "true":
            successes[key] = successes.get(key, 0) + calls
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    money = [f"{m}_usd" for m in MEASURES[2:]]
    writer.writerow(
        [
            "day",
            "assistant_id",
            "variable_value",
            "cost_center_id",
            "team",
            "allocation",
            "charged_by",
            "calls",
            "successful_calls",
            "seconds",
            *money,
            *(f"other_{name}_usd" for name in types),
        ]
    )
    for key in sorted(recount.cells, key=lambda k: (k[0], k[1] or "", k[2] or "")):
        day, assistant, value = key
        a = attributor(assistant, value, day)
        cell = recount.cells[key]
        other = recount.other.get(key, {})
        writer.writerow(
            [
                day.isoformat(),
                assistant or "",
                value or "",
                a.cost_center_id,
                a.team,
                a.allocation,
                a.charged_by,
                cell[0],
                successes.get(key, 0),
                cell[1],
                *cell[2:],
                *(other.get(name, "") for name in types),
            ]
        )
    return out.getvalue().encode()


def other_by_type(
    recount: Recount,
    attributor: Attributor,
    lines: Sequence[ChargebackLine],
    respread_pool: str | None = None,
) -> list[OtherByType]:
    """Each cost center's Other as the workbooks show it for the month's usage — its direct
    lines' (``UNALLOCATED``: its unallocated lines') — split by ``costs[]`` type and rounded
    so the parts add up to it to the cent (:data:`ROUNDING` holds what line rounding adds).

    Pools show no Other in the workbooks (their cost is all Shared), so when
    ``respread_pool`` (a ``calls-without-assistant`` pool) moved the calls without an
    assistant into a pool, their types are left out with them.
    """
    exact: dict[str, dict[str, Decimal]] = {}
    with exact_context():
        for (day, assistant, value), types in recount.other.items():
            a = attributor(assistant, value, day)
            if respread_pool and a.allocation == NO_ASSISTANT_LINE:
                continue
            sums = exact.setdefault(a.cost_center_id, {})
            for name, amount in types.items():
                sums[name] = sums.get(name, ZERO) + amount
    shown: dict[str, Decimal] = {}
    for line in lines:
        if line.allocation == DIRECT or line.allocation.startswith(UNALLOCATED_PREFIX):
            shown[line.cost_center_id] = shown.get(line.cost_center_id, ZERO) + line.other_usd
    names = other_types(exact.values())
    result = []
    for center in sorted(shown.keys() | exact.keys(), key=_center_order):
        parts = exact.get(center, {})
        present = [name for name in names if parts.get(name)]
        rounded = round_to_total([parts[name] for name in present]) if present else []
        by_type = dict(zip(present, rounded, strict=True))
        target = shown.get(center, Decimal("0.00"))
        rest = target - sum(rounded, Decimal("0.00"))
        if rest:
            by_type[ROUNDING] = rest
        result.append(OtherByType(center, target, by_type))
    return result


def _center_order(center: str) -> tuple[bool, str]:
    return (center == UNALLOCATED, center)


def drift_report(
    month: str, run_id: str, recount: Recount, verification: Verification, every: Sequence[Any]
) -> bytes:
    """The report JSON: the verdict, counts, the worst differences named, then all of them."""
    differences: list[VerificationDifference] = list(every)
    document = {
        "month": month,
        "run_id": run_id,
        "source": "GET /call",
        "passed": verification.passed,
        "calls": verification.calls,
        "pages": verification.pages,
        "requests": verification.requests,
        "bytes": recount.bytes,
        "tolerance": {
            "usd": str(verification.tolerance_usd),
            "pct": str(verification.tolerance_pct),
        },
        "lines": {
            "compared": verification.lines_compared,
            "matched": verification.lines_matched,
            "differing": verification.lines_compared - verification.lines_matched,
        },
        "days": {
            "compared": verification.days_compared,
            "matched": verification.days_matched,
            "differing": verification.days_compared - verification.days_matched,
            "columns": verification.day_columns,
        },
        "over_tolerance": sum(d.over_tolerance for d in differences),
        "worst": [describe(d) for d in differences[:REPORT_WORST]],
        "affected_days": sorted(
            {f"{d.assistant_id}@{d.day.isoformat()}" for d in differences if d.day is not None}
        ),
        "differences": [difference_json(d) for d in differences],
        "other_by_type": [
            {
                "cost_center_id": item.cost_center_id,
                "other_usd": str(item.other_usd),
                "by_type": {name: str(value) for name, value in item.by_type.items()},
            }
            for item in verification.other_by_type
        ],
        "recount_file": verification.recount_file,
        "recount_sha256": verification.recount_sha256,
        "pages_sha256": verification.pages_sha256,
    }
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def difference_json(d: VerificationDifference) -> dict[str, Any]:
    return {
        "grain": "line" if d.day is None else "day",
        "day": d.day.isoformat() if d.day else None,
        "cost_center_id": d.cost_center_id,
        "team": d.team,
        "assistant_id": d.assistant_id,
        "allocation": d.allocation,
        "column": d.column,
        "statement": str(d.statement),
        "recount": str(d.recount),
        "difference": str(d.difference),
        "over_tolerance": d.over_tolerance,
    }
