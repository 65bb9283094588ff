from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from vapi_chargeback.attribution import ChargedBy
from vapi_chargeback.close.lifecycle import FINAL, MonthState, approve
from vapi_chargeback.statement import Statement
from vapi_chargeback.statements.render import render_statement
from vapi_chargeback.statements.validate import StatementError

from support.statement_samples import (
    APPROVED_AT,
    closed_statement,
    final_statement,
    restated_statement,
    sample_tie_out,
)


def test_render_writes_the_whole_set_and_a_manifest_hashing_it(
    statement: Statement, tmp_path: Path
) -> None:
    rendered = render_statement(statement, tmp_path)
    manifest = json.loads(rendered.manifest.read_bytes())

    assert sorted(manifest["files"]) == [
        "chargeback-2026-10.csv",
        "chargeback-2026-10.xlsx",
        "cost-centers/sales-2026-10.xlsx",
        "cost-centers/support-2026-10.xlsx",
        "focus-2026-10.csv",
    ]
    for relative, entry in manifest["files"].items():
        data = (tmp_path / relative).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest(), relative
        assert entry["bytes"] == len(data), relative
    assert {path: entry["rows"] for path, entry in manifest["files"].items()} == {
        "chargeback-2026-10.csv": 6,
        "chargeback-2026-10.xlsx": 6,
        "cost-centers/sales-2026-10.xlsx": 2,
        "cost-centers/support-2026-10.xlsx": 2,
        "focus-2026-10.csv": 6,
    }
    assert rendered.manifest_sha256 == hashlib.sha256(rendered.manifest.read_bytes()).hexdigest()


def test_manifest_fields(statement: Statement, tmp_path: Path) -> None:
    manifest = json.loads(render_statement(statement, tmp_path).manifest.read_bytes())

    assert manifest["format_version"] == 1
    assert (manifest["period"], manifest["timezone"]) == ("2026-10", "Europe/Berlin")
    assert manifest["period_start"] == "2026-10-01T00:00:00+02:00"
    assert manifest["period_end"] == "2026-11-01T00:00:00+01:00"
    assert manifest["run_id"] == "manual__2026-11-01T00:00:00+00:00"
    assert (manifest["config_sha256"], manifest["mapping_sha256"]) == ("a" * 64, "b" * 64)
    assert manifest["responses_sha256"] == {"batch-0.json": "c" * 64, "batch-1.json": "d" * 64}
    assert manifest["totals"] == {
        "cost_usd": "182.50",
        "allocated_usd": "152.00",
        "unallocated_usd": "30.50",
        "shared_usd": "12.00",
        "corrections_usd": "0.00",
        "adjustments_usd": "0.00",
        "calls": 163,
        "minutes": "391.83",
        "lines": 6,
        "lines_by_charged_by": {},
        "cost_by_cost_center_usd": {"UNALLOCATED": "30.50", "sales": "107.00", "support": "45.00"},
    }
    assert manifest["reconciliation"] == {
        "org_total_usd": "170.50",
        "shared_total_usd": "12.00",
        "lines_total_usd": "182.50",
        "corrections_usd": "0.00",
        "adjustments_usd": "0.00",
        "difference_usd": "0.00",
        "ok": True,
        "invoice_id": None,
        "invoice_usd": None,
    }
    assert {key: manifest[key] for key in LIFECYCLE} == {
        "status": "draft",
        "version": 1,
        "statement_ids": {
            "org": "VAPI-2026-10-ORG-v1",
            "cost_centers": {
                "sales": "VAPI-2026-10-sales-v1",
                "support": "VAPI-2026-10-support-v1",
            },
        },
        "approved_by": None,
        "approved_at": None,
        "approved_run_id": None,
        "restatement_reason": None,
        "invoice": None,
    }


LIFECYCLE = (
    "status",
    "version",
    "statement_ids",
    "approved_by",
    "approved_at",
    "approved_run_id",
    "restatement_reason",
    "invoice",
)


def test_a_draft_manifest_reads_back_as_the_draft_the_lifecycle_approves(
    statement: Statement, tmp_path: Path
) -> None:
    manifest = json.loads(render_statement(statement, tmp_path).manifest.read_bytes())

    state = MonthState.from_manifest(manifest)

    assert (state.status, state.version, state.invoice) == ("draft", 1, None)
    approved = approve(
        state,
        "2026-10",
        approved_by="controller@example.com",
        at=APPROVED_AT,
        run_id="manual__2026-11-03T10:15:00+00:00",
    )
    assert approved.status == FINAL


def test_a_final_manifest_records_the_approval_as_the_lifecycle_reads_it(tmp_path: Path) -> None:
    statement = final_statement()
    manifest = json.loads(render_statement(statement, tmp_path).manifest.read_bytes())

    assert manifest["status"] == "final"
    assert manifest["approved_by"] == "controller@example.com"
    assert manifest["approved_at"] == "2026-11-03T10:15:12+00:00"
    assert manifest["approved_run_id"] == "manual__2026-11-03T10:15:00+00:00"
    state = MonthState.from_manifest(manifest)
    assert state.approved_at == APPROVED_AT
    assert {key: manifest[key] for key in state.manifest_fields()} == state.manifest_fields()


def test_a_closed_manifest_carries_the_invoice_block_of_the_tie_out(tmp_path: Path) -> None:
    manifest = json.loads(render_statement(closed_statement(), tmp_path).manifest.read_bytes())

    assert manifest["invoice"] == sample_tie_out().manifest_block()
    assert manifest["invoice"]["id"] == "INV-2026-10"
    assert manifest["invoice"]["difference_usd"] == "3.17"
    assert manifest["reconciliation"]["corrections_usd"] == "-0.40"
    assert manifest["reconciliation"]["adjustments_usd"] == "3.17"
    assert manifest["reconciliation"]["invoice_id"] == "INV-2026-10"
    assert manifest["reconciliation"]["invoice_usd"] == "173.67"
    assert manifest["totals"]["corrections_usd"] == "-0.40"
    assert manifest["totals"]["adjustments_usd"] == "3.17"
    assert manifest["totals"]["cost_usd"] == "185.27"
    state = MonthState.from_manifest(manifest)
    assert state.invoice is not None and state.invoice.approvable


def test_a_restatement_manifest_has_new_ids_and_its_reason(tmp_path: Path) -> None:
    manifest = json.loads(render_statement(restated_statement(), tmp_path).manifest.read_bytes())

    assert manifest["version"] == 2
    assert manifest["statement_ids"]["org"] == "VAPI-2026-10-ORG-v2"
    assert manifest["restatement_reason"] == "late-costed calls of 30 October (ticket FIN-42)"
    assert manifest["format_version"] == 1, "added fields; old manifests stay readable"


def test_manifest_is_canonical_json(statement: Statement, tmp_path: Path) -> None:
    raw = render_statement(statement, tmp_path).manifest.read_bytes()

    document = json.loads(raw)
    assert (
        raw == (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
    )


def test_rendering_twice_gives_identical_bytes(
    statement: Statement, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = render_statement(statement, tmp_path / "one")
    monkeypatch.setattr("time.time", lambda: 1_900_000_000.0)
    second = render_statement(statement, tmp_path / "two")

    assert first.files == second.files
    assert first.manifest.read_bytes() == second.manifest.read_bytes()


def test_bad_statement_renders_nothing(
    make_statement: Callable[..., Statement], tmp_path: Path
) -> None:
    with pytest.raises(StatementError):
        render_statement(make_statement(period="2026-13"), tmp_path)

    assert list(tmp_path.iterdir()) == []


def test_manifest_counts_direct_lines_by_the_rule_that_charged_them(
    statement: Statement, tmp_path: Path
) -> None:
    rules: list[ChargedBy] = ["mapping", "rule:metadata"]
    direct = iter(rules)
    lines = [
        replace(line, charged_by=next(direct)) if line.allocation == "direct" else line
        for line in statement.lines
    ]
    manifest = json.loads(
        render_statement(replace(statement, lines=lines), tmp_path).manifest.read_bytes()
    )
    assert manifest["totals"]["lines_by_charged_by"] == {
        "mapping": 1,
        "rule:metadata": 1,
    }
