"""Closing the books through the pipeline's steps, against the emulator over real HTTP.

October is closed once (published as a draft, approved) and each test works on a copy:
late calls for October, served from a second calls file, become correction lines in
November while October's files stay byte-identical; a restatement publishes v2 and keeps
v1 readable and verified; an invoice is tied out to the cent or refuses approval; bad
inputs are refused before anything is fetched or written. Every amount is checked
against the hand-made late calls or an independent ungrouped query, never against what
the pipeline computed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from vapi_chargeback import pipeline, runner, statement_json
from vapi_chargeback.close.audit import read_events
from vapi_chargeback.close.invoices import InvoicesError
from vapi_chargeback.close.lifecycle import LifecycleError
from vapi_chargeback.close.publish import PUBLISHED_FILE
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.names import NAMES_FILE
from vapi_chargeback.statement import Statement
from vapi_chargeback.storage import read_published
from vapi_emulator.data import demo_org, generate_calls_file

from support.close_run import (
    APPROVED_AT,
    LATE_CALLS,
    LATE_COST,
    LATE_MINUTES,
    NOVEMBER,
    OCTOBER,
    SHARED_FIXED,
    Api,
    approve,
    config_folder,
    csv_lines,
    run,
    write_late_calls,
)
from support.reliability import DEMO_MAPPING, Emulator, emulator, snapshot
from support.statement_checks import org_total

pytestmark = pytest.mark.slow
LATE_ASSISTANT = LATE_CALLS[0][1]
REASON = "late calls of the 2026-10-30 outage were costed after the close"


@dataclass(frozen=True)
class Apis:
    before: Emulator
    """October and November as first served."""
    late: Emulator
    """The same, plus the late October calls from a second calls file."""

    @property
    def before_api(self) -> Api:
        return Api(self.before.base_url)

    @property
    def late_api(self) -> Api:
        return Api(self.late.base_url)


@pytest.fixture(scope="module")
def apis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Apis]:
    folder = tmp_path_factory.mktemp("calls")
    calls = folder / "calls.parquet"
    generate_calls_file(calls, OCTOBER, months=2, calls_per_month=3_000)
    late = write_late_calls(folder / "late-october.jsonl")
    with emulator([calls]) as before, emulator([calls, late]) as with_late:
        yield Apis(before, with_late)


@dataclass(frozen=True)
class Closed:
    """October published as a draft and approved, in a folder the tests copy."""

    config: Path
    output: Path
    files: dict[str, str]
    manifest: dict[str, Any]
    run: pipeline.RunInfo
    """The run that published and approved it."""
    published: dict[str, Any]
    """What its publish step handed the review."""


@pytest.fixture(scope="module")
def closed(apis: Apis, tmp_path_factory: pytest.TempPathFactory) -> Closed:
    folder = tmp_path_factory.mktemp("closed")
    config = config_folder(folder / "config")
    output = folder / "output"
    october = run(apis.before_api, config, output, OCTOBER, "oct-draft")
    assert october.published is not None and october.published["status"] == "draft"
    approved = approve(october)
    assert approved["status"] == "final"
    manifest = read_published(output, OCTOBER)
    assert manifest is not None
    return Closed(
        config, output, snapshot(output / OCTOBER), manifest, october.run, october.published
    )


def named_mapping(config: Path, folder: Path, assistant: str | None, name: str) -> Path:
    """A copy of ``config`` whose mapping has the ``assistant_name`` column, naming
    ``assistant`` ``name`` and leaving the others empty."""
    shutil.copytree(config.parent, folder)
    mapping = folder / DEMO_MAPPING.name
    lines = mapping.read_text(encoding="utf-8").splitlines()
    named = [lines[0] + ",assistant_name"]
    named += [f"{line},{name if line.startswith(str(assistant)) else ''}" for line in lines[1:]]
    mapping.write_text("\n".join(named) + "\n", encoding="utf-8")
    return folder / config.name


def copy_of(closed: Closed, tmp_path: Path) -> Path:
    output = tmp_path / "output"
    shutil.copytree(closed.output, output)
    return output


def moved(run_info: pipeline.RunInfo, output: Path) -> pipeline.RunInfo:
    """``run_info`` pointing at the copy ``output`` of its output folder."""
    work = output / "_runs" / run_info.month / Path(run_info.work_url).name
    return run_info.model_copy(update={"output_url": output.as_uri(), "work_url": str(work)})


def published_statement(month: runner.MonthRun) -> Statement:
    work = pipeline.default_open_path(month.run.work_url)
    return statement_json.loads((work / PUBLISHED_FILE).read_bytes(), work)


def cost_sum(rows: dict[Any, dict[str, str]], allocation_prefix: str = "") -> Decimal:
    return sum(
        (
            Decimal(row["cost_usd"])
            for key, row in rows.items()
            if key[3].startswith(allocation_prefix)
        ),
        Decimal(0),
    )


# --- the close itself ------------------------------------------------------------------


def test_an_approved_month_is_final_with_its_approval_and_audit_trail(closed: Closed) -> None:
    manifest = closed.manifest

    assert (manifest["status"], manifest["version"]) == ("final", 1)
    assert manifest["approved_by"] == "fiona.finance"
    assert manifest["approved_at"] == "2026-12-03T09:30:00+00:00"
    assert manifest["statement_ids"]["org"] == "VAPI-2026-10-ORG-v1"
    assert manifest["invoice"] is None
    events = read_events(closed.output, OCTOBER)
    assert [event.event for event in events] == ["draft-published", "approved"]
    assert events[1].actor == "fiona.finance"
    assert events[1].files == {
        name: entry["sha256"] for name, entry in manifest["files"].items()
    } | {"manifest.json": events[1].files["manifest.json"]}


def test_every_assistant_line_is_named_from_the_api_and_a_deleted_one_by_its_id(
    closed: Closed,
) -> None:
    """The emulator lists the generated org but its deleted pilot, which still has calls."""
    org = demo_org()
    deleted = org.assistants[-1].id
    rows = csv_lines((closed.output / OCTOBER / f"chargeback-{OCTOBER}.csv").read_bytes())
    named = {key[2]: row["assistant_name"] for key, row in rows.items() if key[2]}
    assert deleted in named and len(named) > 20
    assert named == {
        assistant.id: deleted if assistant.id == deleted else assistant.name
        for assistant in org.assistants
        if assistant.id in named
    }
    assert all(row["assistant_name"] == "" for key, row in rows.items() if not key[2])
    work = pipeline.default_open_path(closed.run.work_url)
    snapshot = json.loads((work / NAMES_FILE).read_bytes())
    assert closed.manifest["names"] == {
        "sha256": snapshot["sha256"],
        "by_source": {"api": len(named) - 1, "id": 1},
        "api_error": None,
    }
    assert snapshot["sources"][deleted] == "id"


def test_late_calls_of_a_final_month_become_corrections_in_the_next_open_month(
    apis: Apis, closed: Closed, tmp_path: Path
) -> None:
    output = copy_of(closed, tmp_path)

    rerun = run(apis.late_api, closed.config, output, OCTOBER, "oct-late")

    assert rerun.published is not None
    assert rerun.published["action"] == "corrections"
    assert rerun.published["carried_to"] == NOVEMBER
    assert Decimal(rerun.published["corrections_usd"]) == LATE_COST
    assert snapshot(output / OCTOBER) == closed.files, "a final month's files never change"
    assert read_published(output, OCTOBER) == closed.manifest
    pending = output / "_corrections" / NOVEMBER / f"{OCTOBER}.json"
    assert pending.is_file()
    carried_file = json.loads(pending.read_bytes())

    renamed = named_mapping(closed.config, tmp_path / "renamed", LATE_ASSISTANT, "Front Desk")
    again = run(apis.late_api, renamed, output, OCTOBER, "oct-late-again")
    assert again.published is not None and again.published["action"] == "unchanged", (
        "a name the mapping now gives an assistant with pending corrections changes no figure"
    )
    assert snapshot(output / OCTOBER) == closed.files
    assert json.loads(pending.read_bytes()) == carried_file

    november = run(apis.late_api, closed.config, output, NOVEMBER, "nov-draft")
    assert november.published is not None and november.published["status"] == "draft"
    rows = csv_lines((output / NOVEMBER / f"chargeback-{NOVEMBER}.csv").read_bytes())
    corrections = {key: row for key, row in rows.items() if key[3] == f"correction:{OCTOBER}"}
    assert cost_sum(corrections) == LATE_COST
    names = {key[2]: row["assistant_name"] for key, row in corrections.items() if key[2]}
    assert names[LATE_ASSISTANT] == "Inbound Sales – Reese", "named in November from the API"
    assert sum(int(row["calls"]) for row in corrections.values()) == len(LATE_CALLS)
    assert sum(Decimal(row["minutes"]) for row in corrections.values()) == LATE_MINUTES
    october_ids = closed.manifest["statement_ids"]
    for (center, _, _, _), row in corrections.items():
        assert row["corrects"] == october_ids["cost_centers"].get(center, october_ids["org"])
    check = json.loads((output / NOVEMBER / "manifest.json").read_bytes())["reconciliation"]
    assert Decimal(check["corrections_usd"]) == LATE_COST
    compared = published_statement(november).previous
    assert compared is not None, "allocate read the month before as published"
    assert (compared.period, compared.statement_id, compared.status) == (
        OCTOBER,
        "VAPI-2026-10-ORG-v1",
        "final",
    )
    booked = csv_lines((output / OCTOBER / f"chargeback-{OCTOBER}.csv").read_bytes())
    assert {line.key for line in compared.lines} == set(booked)
    drivers = json.loads((output / NOVEMBER / "manifest.json").read_bytes())["variance"]
    assert drivers["previous_statement_id"] == "VAPI-2026-10-ORG-v1"
    assert Decimal(drivers["org"]["delta_usd"]) == cost_sum(rows) - cost_sum(booked)
    assert Decimal(check["lines_total_usd"]) == (
        Decimal(check["org_total_usd"]) + SHARED_FIXED + LATE_COST
    )
    assert Decimal(check["difference_usd"]) == 0

    october_rows = csv_lines((output / OCTOBER / f"chargeback-{OCTOBER}.csv").read_bytes())
    all_october_calls = org_total(apis.late_api, OCTOBER)
    assert cost_sum(october_rows) + cost_sum(corrections) == all_october_calls + SHARED_FIXED
    assert all_october_calls - org_total(apis.before_api, OCTOBER) == LATE_COST

    events = [event.event for event in read_events(output, OCTOBER)]
    assert events == ["draft-published", "approved", "correction-carried"]

    approve(november)
    assert read_published(output, NOVEMBER)["status"] == "final"  # type: ignore[index]
    third = run(apis.late_api, closed.config, output, OCTOBER, "oct-third")
    assert third.published is not None and third.published["action"] == "unchanged", (
        "corrections booked in a final month are not charged twice"
    )


def test_a_draft_computed_before_corrections_were_carried_into_it_cannot_be_approved(
    apis: Apis, closed: Closed, tmp_path: Path
) -> None:
    output = copy_of(closed, tmp_path)
    early = run(apis.before_api, closed.config, output, NOVEMBER, "nov-early")
    carried = run(apis.late_api, closed.config, output, OCTOBER, "oct-late")
    assert carried.published is not None
    assert "2026-11's draft predates this: run 2026-11 again" in carried.published["message"]
    files = snapshot(output / NOVEMBER)

    with pytest.raises(LifecycleError, match="the corrections of 2026-10 pending for it changed"):
        approve(early)

    assert snapshot(output / NOVEMBER) == files
    again = run(apis.late_api, closed.config, output, NOVEMBER, "nov-again")
    assert approve(again)["status"] == "final"
    rows = csv_lines((output / NOVEMBER / f"chargeback-{NOVEMBER}.csv").read_bytes())
    assert cost_sum(rows, f"correction:{OCTOBER}") == LATE_COST


def test_restating_a_final_month_publishes_v2_and_keeps_v1_verified(
    apis: Apis, closed: Closed, tmp_path: Path
) -> None:
    output = copy_of(closed, tmp_path)
    run(apis.late_api, closed.config, output, OCTOBER, "oct-late")
    pending = output / "_corrections" / NOVEMBER / f"{OCTOBER}.json"
    assert pending.is_file()

    restated = run(
        apis.late_api, closed.config, output, OCTOBER, "oct-restate", restate=True, reason=REASON
    )

    assert restated.published is not None
    assert (restated.published["action"], restated.published["version"]) == ("restated", 2)
    assert read_published(output, OCTOBER, version=1) == closed.manifest
    kept = output / "_versions" / OCTOBER / "v1"
    assert snapshot(kept) == {**closed.files}
    assert not pending.exists(), "corrections pending against v1 are void once it is restated"
    draft = read_published(output, OCTOBER)
    assert draft is not None
    assert (draft["status"], draft["version"], draft["restatement_reason"]) == ("draft", 2, REASON)
    assert draft["statement_ids"]["org"] == "VAPI-2026-10-ORG-v2"

    old = csv_lines((kept / f"chargeback-{OCTOBER}.csv").read_bytes())
    new = csv_lines((output / OCTOBER / f"chargeback-{OCTOBER}.csv").read_bytes())

    def shown(row: dict[str, str] | None) -> dict[str, str] | None:
        # The id names the version; converted amounts (cost_eur) are rounded together, so an
        # unchanged line's may move by a cent when others change.
        derived = ("statement_id", "cost_eur")
        return None if row is None else {k: v for k, v in row.items() if k not in derived}

    expected = {
        key for key in old.keys() | new.keys() if shown(old.get(key)) != shown(new.get(key))
    }
    assert expected, "the late calls change some lines"
    statement = published_statement(restated)
    assert statement.changes_vs is not None and statement.changes_vs.version == 1
    assert {change.key for change in statement.changes_vs.lines} == expected
    assert cost_sum(new) - cost_sum(old) == LATE_COST

    workbook = openpyxl.load_workbook(output / OCTOBER / f"chargeback-{OCTOBER}.xlsx")
    sheet = workbook["Changes vs v1"]
    listed = {  # cost center, team, assistant id, allocation (the name sits before it)
        tuple(cell or "" for cell in (*row[1:4], row[5]))
        for row in sheet.iter_rows(values_only=True)
        if row and row[0] in ("added", "removed", "changed")
    }
    assert listed == expected

    approved = approve(restated, by="carla.controller")
    assert (approved["status"], approved["version"]) == ("final", 2)
    assert read_published(output, OCTOBER, version=1) == closed.manifest
    trail = read_events(output, OCTOBER)
    assert [event.event for event in trail] == [
        "draft-published",
        "approved",
        "correction-carried",
        "restated",
        "approved",
    ]
    assert (trail[3].reason, trail[3].version) == (REASON, 2)


# --- the invoice tie-out ---------------------------------------------------------------


def test_an_invoice_above_the_total_is_spread_by_direct_cost_and_ties_to_the_cent(
    apis: Apis, tmp_path: Path
) -> None:
    usage = org_total(apis.before_api, OCTOBER)
    amount = usage + Decimal("3.17")
    config = config_folder(
        tmp_path / "config", f"period,invoice_id,amount_usd\n{OCTOBER},INV-2026-10,{amount}\n"
    )
    output = tmp_path / "output"

    october = run(apis.before_api, config, output, OCTOBER, "oct-invoiced")

    rows = csv_lines((output / OCTOBER / f"chargeback-{OCTOBER}.csv").read_bytes())
    adjustments = {
        key[0]: Decimal(row["cost_usd"])
        for key, row in rows.items()
        if key[3] == "adjustment:invoice"
    }
    assert sum(adjustments.values(), Decimal(0)) == Decimal("3.17")
    direct: dict[str, Decimal] = {}
    for key, row in rows.items():
        if key[3] == "direct" and key[0] != "UNALLOCATED":
            direct[key[0]] = direct.get(key[0], Decimal(0)) + Decimal(row["cost_usd"])
    whole = sum(direct.values(), Decimal(0))
    for center, share in adjustments.items():
        exact = Decimal("3.17") * direct[center] / whole
        assert abs(share - exact) < Decimal("0.01"), (center, share, exact)
    assert set(adjustments) == {center for center, cost in direct.items() if cost > 0}
    manifest = read_published(output, OCTOBER)
    assert manifest is not None
    assert manifest["invoice"]["id"] == "INV-2026-10"
    assert Decimal(manifest["invoice"]["difference_usd"]) == Decimal("3.17")
    assert manifest["invoice"]["approvable"] is True
    check = manifest["reconciliation"]
    assert Decimal(check["lines_total_usd"]) == amount + SHARED_FIXED
    assert (check["invoice_id"], Decimal(check["invoice_usd"])) == ("INV-2026-10", amount)

    approved = approve(october)
    assert approved["status"] == "final"


def test_an_invoice_five_percent_off_cannot_be_approved_and_says_both_amounts(
    apis: Apis, tmp_path: Path
) -> None:
    usage = org_total(apis.before_api, OCTOBER)
    amount = (usage * Decimal("1.05")).quantize(Decimal("0.01"))
    config = config_folder(
        tmp_path / "config", f"period,invoice_id,amount_usd\n{OCTOBER},INV-OFF,{amount}\n"
    )
    output = tmp_path / "output"
    october = run(apis.before_api, config, output, OCTOBER, "oct-off")
    assert october.published is not None
    summary = pipeline.review_summary(october.run, october.published)
    assert summary["approvable"] is False
    files = snapshot(output / OCTOBER)

    with pytest.raises(LifecycleError) as refused:
        approve(october)

    message = str(refused.value)
    assert f"{amount} USD" in message and f"{usage} USD" in message
    assert "cannot be approved" in message
    assert snapshot(output / OCTOBER) == files
    assert read_published(output, OCTOBER)["status"] == "draft"  # type: ignore[index]
    assert [event.event for event in read_events(output, OCTOBER)] == ["draft-published"]


# --- refusals: a clear error, nothing fetched, nothing written --------------------------


@pytest.mark.parametrize(
    ("invoices", "expected"),
    [
        pytest.param(
            "period,invoice_id,amount_usd\n2026-10,INV-1,12.5.0\n",
            "invoices.csv:2: amount_usd '12.5.0' is not a decimal amount",
            id="malformed-amount",
        ),
        pytest.param(
            "period,invoice_id,amount_usd\n2026-10,INV-1,100.00\n2026-10,INV-2,101.00\n",
            "invoices.csv:3: period 2026-10 already has invoice 'INV-1' on line 2",
            id="duplicate-month",
        ),
        pytest.param(
            "period,invoice_id,amount_usd\n2026-09,INV-1,100.00\n2026-10,INV-1,101.00\n",
            "invoices.csv:3: invoice_id 'INV-1' is also on line 2",
            id="duplicate-invoice-id",
        ),
        pytest.param(
            "period,invoice_id,amount_usd\n2026-10,INV-1,-3.17\n",
            "invoices.csv:2: amount_usd -3.17 is negative",
            id="negative-amount",
        ),
        pytest.param(
            "period,invoice,amount\n2026-10,INV-1,3.17\n",
            "invoices.csv:1: header is 'period,invoice,amount'",
            id="wrong-header",
        ),
    ],
)
def test_bad_invoices_are_refused_before_anything_is_fetched(
    apis: Apis, tmp_path: Path, invoices: str, expected: str
) -> None:
    config = config_folder(tmp_path / "config", invoices)
    output = tmp_path / "output"
    requests = apis.before.analytics_requests()

    with pytest.raises(InvoicesError) as refused:
        run(apis.before_api, config, output, OCTOBER, "bad-invoices")

    assert expected in str(refused.value)
    assert isinstance(refused.value, PermanentError)
    assert apis.before.analytics_requests() == requests
    assert not output.exists()


@pytest.mark.parametrize(
    ("restate", "reason", "expected"),
    [
        pytest.param(True, None, "restating 2026-10 needs a reason", id="restate-without-reason"),
        pytest.param(True, "   ", "restating 2026-10 needs a reason", id="blank-reason"),
        pytest.param(False, REASON, "but restate is false", id="reason-without-restate"),
    ],
)
def test_a_restatement_needs_restate_and_a_reason_together(
    apis: Apis, closed: Closed, tmp_path: Path, restate: bool, reason: str | None, expected: str
) -> None:
    output = copy_of(closed, tmp_path)
    before = snapshot(output)
    requests = apis.late.analytics_requests()

    with pytest.raises(LifecycleError, match=expected):
        run(
            apis.late_api,
            closed.config,
            output,
            OCTOBER,
            "bad-restate",
            restate=restate,
            reason=reason,
        )

    assert apis.late.analytics_requests() == requests
    assert snapshot(output) == before


def test_restating_a_draft_is_refused_before_anything_is_fetched(
    apis: Apis, tmp_path: Path
) -> None:
    config = config_folder(tmp_path / "config")
    output = tmp_path / "output"
    run(apis.before_api, config, output, OCTOBER, "oct-draft")
    before = snapshot(output)

    with pytest.raises(LifecycleError, match="it is a draft, so nothing was booked to restate"):
        run(apis.before_api, config, output, OCTOBER, "restate-draft", restate=True, reason=REASON)

    assert snapshot(output) == before


def test_approving_or_rejecting_a_month_that_is_not_a_draft_is_refused_and_writes_nothing(
    closed: Closed, tmp_path: Path
) -> None:
    output = copy_of(closed, tmp_path)
    october = moved(closed.run, output)
    files = snapshot(output / OCTOBER)
    trail = read_events(output, OCTOBER)

    with pytest.raises(LifecycleError, match=r"2026-10 v1 is final \(approved by fiona.finance"):
        pipeline.finalize_run(
            october, approved_by="someone.else", approved_at=APPROVED_AT, reviewed=closed.published
        )

    with pytest.raises(LifecycleError, match=r"cannot reject 2026-10: 2026-10 v1 is final"):
        pipeline.reject_run(october, rejected_by="someone.else", at=APPROVED_AT, reason="late")
    assert snapshot(output / OCTOBER) == files
    assert read_events(output, OCTOBER) == trail


def test_a_rejected_draft_stays_a_draft_and_the_rejection_is_recorded(
    apis: Apis, tmp_path: Path
) -> None:
    config = config_folder(tmp_path / "config")
    output = tmp_path / "output"
    october = run(apis.before_api, config, output, OCTOBER, "oct-draft")
    files = snapshot(output / OCTOBER)

    result = pipeline.reject_run(
        october.run,
        rejected_by="fiona.finance",
        at=datetime.now(UTC),
        reason="marketing is missing",
    )

    assert (result["action"], result["status"]) == ("rejected", "draft")
    assert snapshot(output / OCTOBER) == files
    events = read_events(output, OCTOBER)
    assert [event.event for event in events] == ["draft-published", "rejected"]
    assert (events[1].actor, events[1].reason) == ("fiona.finance", "marketing is missing")


def test_the_review_summary_names_what_the_approver_must_check(apis: Apis, tmp_path: Path) -> None:
    config = config_folder(tmp_path / "config")
    output = tmp_path / "output"
    october = run(apis.before_api, config, output, OCTOBER, "oct-draft")
    assert october.published is not None

    summary = pipeline.review_summary(october.run, october.published)

    manifest = read_published(output, OCTOBER)
    assert manifest is not None
    assert (summary["month"], summary["status"], summary["version"]) == (OCTOBER, "draft", 1)
    assert summary["org_statement_id"] == "VAPI-2026-10-ORG-v1"
    assert summary["total_usd"] == manifest["totals"]["cost_usd"]
    assert summary["approvable"] is True and summary["tied_to_invoice"] is False
    assert "VAPI-2026-10-ORG-v1" in summary["subject"]
    assert "not tied to an invoice" in summary["body"]
    assert set(summary["files"]) == set(manifest["files"])
