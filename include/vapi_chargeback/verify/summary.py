"""The verification in brief: the manifest's ``verification`` block and a task's result.

Kept apart from the recount so that the manifest writer imports only the statement model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vapi_chargeback.statement import Verification


def manifest_block(verification: Verification) -> dict[str, Any]:
    """The manifest's ``verification`` block: the verdict, what it compared, where the
    recount and report are, and the sha256 of every page the recount read."""
    return {
        "source": "GET /call",
        "passed": verification.passed,
        "calls": verification.calls,
        "pages": verification.pages,
        "requests": verification.requests,
        "tolerance_usd": str(verification.tolerance_usd),
        "tolerance_pct": str(verification.tolerance_pct),
        "lines": {"compared": verification.lines_compared, "matched": verification.lines_matched},
        "days": {
            "compared": verification.days_compared,
            "matched": verification.days_matched,
            "columns": verification.day_columns,
        },
        "differences": verification.differences_total,
        "other_by_type_usd": {
            item.cost_center_id: {name: str(value) for name, value in item.by_type.items()}
            for item in verification.other_by_type
        },
        "recount": {"file": verification.recount_file, "sha256": verification.recount_sha256},
        "report": {"file": verification.report_file, "sha256": verification.report_sha256},
        "pages_sha256": list(verification.pages_sha256),
    }


def as_mapping(verification: Verification) -> Mapping[str, Any]:
    """The small summary a task hands on (XCom): never the page digests."""
    return {
        "passed": verification.passed,
        "calls": verification.calls,
        "pages": verification.pages,
        "lines_matched": verification.lines_matched,
        "lines_compared": verification.lines_compared,
        "days_matched": verification.days_matched,
        "days_compared": verification.days_compared,
        "differences": verification.differences_total,
    }
