"""Months run, approved and corrected through the pipeline's steps, for the close tests.

The steps are the DAG's (``runner.run_month``, ``finalize_run``), against the emulator
over real HTTP; the config is the demo's, copied beside an ``invoices.csv`` of the
test's choosing. Late calls are hand-made Vapi ``Call`` records created in October, so
what they cost is known here, independently of anything the pipeline computes.
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from vapi_chargeback import pipeline, runner
from vapi_chargeback.runner import MonthRun

from support.reliability import DEMO_CONFIG, DEMO_MAPPING, KEY, dumps_exact, make_client

OCTOBER, NOVEMBER = "2026-10", "2026-11"
APPROVED_AT = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
COMPONENTS = ("transport", "stt", "llm", "tts", "vapi")
SHARED_FIXED = Decimal("584.60")
"""The demo config's fixed pools: platform fee 500.00 + phone numbers 84.60."""


@dataclass(frozen=True)
class Api:
    """An emulator as ``support.statement_checks.org_total`` asks it."""

    base_url: str
    api_key: str = KEY


def config_folder(folder: Path, invoices: str | None = None) -> Path:
    """The demo config, mapping and rates in ``folder``, with ``invoices.csv`` holding
    ``invoices``."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO_CONFIG, folder / DEMO_CONFIG.name)
    shutil.copy(DEMO_MAPPING, folder / DEMO_MAPPING.name)
    shutil.copy(DEMO_CONFIG.with_name("fx_rates.csv"), folder)
    if invoices is not None:
        (folder / "invoices.csv").write_text(invoices, encoding="utf-8")
    return folder / DEMO_CONFIG.name


def settings(
    config: Path,
    output: Path,
    month: str,
    run_id: str,
    *,
    restate: bool = False,
    reason: str | None = None,
) -> pipeline.RunSettings:
    return pipeline.RunSettings(
        config_path=str(config),
        output_url=output.as_uri(),
        default_output_url=output.as_uri(),
        month=month,
        run_id=run_id,
        restate=restate,
        reason=reason,
    )


def run(
    api: Api,
    config: Path,
    output: Path,
    month: str,
    run_id: str,
    *,
    publish: bool = True,
    restate: bool = False,
    reason: str | None = None,
) -> MonthRun:
    """One month through the DAG's steps: plan → fetch → allocate → reconcile → publish."""
    with make_client(api.base_url) as client:
        return runner.run_month(
            settings(config, output, month, run_id, restate=restate, reason=reason),
            client,
            publish=publish,
        )


def approve(month: MonthRun, by: str = "fiona.finance") -> dict[str, Any]:
    assert month.published is not None
    return pipeline.finalize_run(
        month.run, approved_by=by, approved_at=APPROVED_AT, reviewed=month.published
    )


# Late calls of October, made by hand.

LATE_CALLS = [
    # (id, assistant, created at (UTC), minutes, cost, transport, stt, llm, tts, vapi)
    ("late-1", "85527357-a2e6-4647-b03e-2fb81f223f41", "2026-10-12T09:00:00.000Z", 3, "1.23",
     "0.10", "0.20", "0.50", "0.30", "0.13"),
    ("late-2", "85527357-a2e6-4647-b03e-2fb81f223f41", "2026-10-20T16:30:00.000Z", 1, "0.77",
     "0.05", "0.10", "0.30", "0.12", "0.10"),
    ("late-3", "630dc3ce-3be4-4bca-b72f-45b35223479f", "2026-10-05T11:15:00.000Z", 4, "2.05",
     "0.20", "0.35", "0.80", "0.40", "0.20"),
    ("late-4", "21a557d8-e5a7-4329-adcb-81db3f65cf9c", "2026-10-28T13:45:00.000Z", 2, "0.94",
     "0.08", "0.16", "0.35", "0.20", "0.10"),
    ("late-5", None, "2026-10-17T08:00:00.000Z", 5, "3.10",
     "0.30", "0.50", "1.20", "0.60", "0.25"),
]  # fmt: skip
LATE_COST = sum((Decimal(call[4]) for call in LATE_CALLS), Decimal(0))
LATE_MINUTES = sum((Decimal(call[3]) for call in LATE_CALLS), Decimal(0))


def write_late_calls(path: Path) -> Path:
    """The late calls as JSON Lines of Vapi ``Call`` objects, amounts as exact JSON numbers."""
    lines = []
    for call_id, assistant, created, minutes, cost, *parts in LATE_CALLS:
        start = datetime.fromisoformat(created.replace("Z", "+00:00"))
        ended = (start + timedelta(minutes=minutes)).isoformat(timespec="milliseconds")
        record: dict[str, Any] = {
            "id": call_id,
            "orgId": "org-late",
            "type": "inboundPhoneCall",
            "status": "ended",
            "endedReason": "customer-ended-call",
            "createdAt": created,
            "startedAt": created,
            "endedAt": ended.replace("+00:00", "Z"),
            "cost": Decimal(cost),
            "costBreakdown": {
                **dict(zip(COMPONENTS, map(Decimal, parts), strict=True)),
                "total": Decimal(cost),
            },
        }
        if assistant:
            record["assistantId"] = assistant
        lines.append(dumps_exact(record).decode() + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def csv_lines(data: bytes) -> dict[tuple[str, str, str, str], dict[str, str]]:
    """A statement CSV's rows by (cost center, team, assistant, allocation)."""
    rows = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
    return {
        (row["cost_center_id"], row["team"], row["assistant_id"], row["allocation"]): row
        for row in rows
    }
