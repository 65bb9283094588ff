"""``vapi-chargeback status`` and ``diff`` over months published by the DAG's steps.

September and October are run against the emulator over real HTTP; October is approved,
then restated against an API that also serves hand-made late calls, so the output holds
a kept version (``_versions/2026-10/v1``) beside the current v2. The late calls' costs are
known here (``support.close_run.LATE_CALLS``), so the diff of the two versions is checked
against figures the pipeline did not compute; the other figures against the manifests.
The commands run through the installed entry point, in their own processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest

from vapi_chargeback import localrun
from vapi_chargeback.cli import diff
from vapi_chargeback.delivery.log import DeliveryLog, MessageRecord, write_log

from support import close_run
from support.reliability import KEY
from support.s3_server import ACCESS_KEY, REGION, SECRET_KEY, local_s3

CLI = localrun.BIN / "vapi-chargeback"
SEPTEMBER, OCTOBER = "2026-09", close_run.OCTOBER


@dataclass(frozen=True)
class Output:
    folder: Path

    def manifest(self, month: str, version: int | None = None) -> dict[str, Any]:
        where = (
            self.folder / month
            if version is None
            else self.folder / "_versions" / month / f"v{version}"
        )
        document: dict[str, Any] = json.loads((where / "manifest.json").read_text(encoding="utf-8"))
        return document


def cli_run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {name: value for name, value in os.environ.items() if not name.startswith("VAPI_")}
    return subprocess.run(
        [str(CLI), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Output]:
    work = tmp_path_factory.mktemp("cli-status")
    calls = localrun.generate_calls(
        work / "calls.parquet", month=SEPTEMBER, months=2, calls_per_month=1500
    )
    late = close_run.write_late_calls(work / "late.jsonl")
    config = close_run.config_folder(work / "config")
    folder = work / "out"
    with localrun.serve_emulator([calls], KEY, log=work / "emulator.log") as url:
        api = close_run.Api(url)
        close_run.run(api, config, folder, SEPTEMBER, "september")
        close_run.approve(close_run.run(api, config, folder, OCTOBER, "october-1"))
    with localrun.serve_emulator([calls, late], KEY, log=work / "emulator-late.log") as url:
        close_run.run(
            close_run.Api(url), config, folder, OCTOBER, "october-2", restate=True,
            reason="late calls",
        )  # fmt: skip
    yield Output(folder)


def status_json(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    done = cli_run("status", *args, "--json", env=env)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def test_status_lists_every_month_and_kept_version_with_the_manifests_figures(
    output: Output,
) -> None:
    code, shown = status_json("--output", str(output.folder))

    assert code == 0
    assert shown["output"] == output.folder.as_uri()
    months = [(m["month"], m["version"], m["current"]) for m in shown["months"]]
    assert months == [(SEPTEMBER, 1, True), (OCTOBER, 2, True), (OCTOBER, 1, False)]
    for item in shown["months"]:
        manifest = output.manifest(item["month"], None if item["current"] else item["version"])
        assert item["verified"] is True and item["problems"] == []
        assert item["status"] == manifest["status"]
        assert item["total_usd"] == manifest["totals"]["cost_usd"]
        assert item["unallocated_usd"] == manifest["totals"]["unallocated_usd"]
        assert item["calls"] == manifest["totals"]["calls"]
        assert item["statement_id"] == manifest["statement_ids"]["org"]
    statuses = {(m["month"], m["version"]): m["status"] for m in shown["months"]}
    assert statuses[(OCTOBER, 1)] == "final" and statuses[(OCTOBER, 2)] == "draft"
    assert {m["delivery"] for m in shown["months"] if m["current"]} == {"not delivered"}


def test_status_table_shows_each_month_on_one_line(output: Output) -> None:
    done = cli_run("status", "--output", str(output.folder))

    assert done.returncode == 0, done.stderr
    rows = done.stdout.split("\n\n")[1].splitlines()[2:]
    assert [row.split()[:4] for row in rows] == [
        [SEPTEMBER, "v1", "draft", "ok"],
        [OCTOBER, "v2", "draft", "ok"],
        [OCTOBER, "v1", "(kept)", "final"],
    ]
    total = Decimal(output.manifest(OCTOBER)["totals"]["cost_usd"])
    assert f"{total:,.2f}" in rows[1]


def test_status_shows_the_delivery_ledger(output: Output, tmp_path: Path) -> None:
    copy = tmp_path / "out"
    shutil.copytree(output.folder, copy)
    now = datetime.now(UTC)

    def message(key: str, status: Literal["sent", "failed"]) -> MessageRecord:
        return MessageRecord(
            key=key, kind="finance" if key == "finance" else "owner", recipient="x@example.com",
            subject="s", message_id=f"<{key}@example.com>", attachments=[], status=status,
            run_id="r",
        )  # fmt: skip

    write_log(
        copy,
        DeliveryLog(
            period=OCTOBER, manifest_sha256="0" * 64, updated_at=now,
            messages={"finance": message("finance", "sent"), "owner:sales": message("owner:sales", "failed")},
        ),
    )  # fmt: skip
    write_log(
        copy,
        DeliveryLog(
            period=SEPTEMBER, manifest_sha256="0" * 64, updated_at=now,
            messages={"finance": message("finance", "sent")},
        ),
    )  # fmt: skip

    code, shown = status_json("--output", str(copy))

    assert code == 0
    delivery = {
        m["month"]: (m["delivery"], m["delivery_counts"]) for m in shown["months"] if m["current"]
    }
    assert delivery[SEPTEMBER] == ("sent 1/1", {"pending": 0, "sending": 0, "sent": 1, "failed": 0})
    assert delivery[OCTOBER][0] == "incomplete (sent 1, failed 1)"


@pytest.mark.parametrize(
    ("damaged", "where"),
    [
        pytest.param(f"{SEPTEMBER}/chargeback-{SEPTEMBER}.csv", SEPTEMBER, id="current-month"),
        pytest.param(
            f"_versions/{OCTOBER}/v1/chargeback-{OCTOBER}.csv", f"{OCTOBER}@v1", id="kept-version"
        ),
    ],
)
def test_status_exits_1_naming_the_file_that_does_not_verify(
    output: Output, tmp_path: Path, damaged: str, where: str
) -> None:
    copy = tmp_path / "out"
    shutil.copytree(output.folder, copy)
    target = copy / damaged
    data = bytearray(target.read_bytes())
    data[-3] = ord("9") if data[-3] != ord("9") else ord("8")
    target.write_bytes(bytes(data))

    done = cli_run("status", "--output", str(copy))
    code, shown = status_json("--output", str(copy))

    assert done.returncode == code == 1
    assert "FAILED" in done.stdout
    name = Path(damaged).name
    assert any(
        line.startswith(f"{where}: ") and f"{name} does not match its sha256/size" in line
        for line in done.stdout.splitlines()
    ), done.stdout
    failed = [m for m in shown["months"] if not m["verified"]]
    assert len(failed) == 1 and failed[0]["total_usd"] is None


def test_status_of_an_empty_output_says_so(tmp_path: Path) -> None:
    done = cli_run("status", "--output", str(tmp_path))

    assert done.returncode == 0
    assert done.stdout.strip() == f"{tmp_path.as_uri()}: no published month"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("{tmp}/nowhere", "no such folder; check the path", id="missing-folder"),
        pytest.param(
            "s3://aws_default@finance/vapi",
            "names the Airflow connection 'aws_default', which only Airflow resolves; give"
            " --output s3://finance/vapi",
            id="airflow-connection-in-url",
        ),
    ],
)
def test_status_refuses_an_output_it_cannot_read(tmp_path: Path, url: str, message: str) -> None:
    done = cli_run("status", "--output", url.format(tmp=tmp_path))

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("vapi-chargeback: error: --output ")
    assert message in done.stderr


@pytest.mark.slow
def test_status_reads_an_s3_output(output: Output) -> None:
    """s3://bucket/prefix through boto3's own chain (the AWS_* variables), as on a laptop."""
    with local_s3() as s3:
        filesystem = s3.filesystem()
        filesystem.put(str(output.folder), f"{s3.bucket}/statements", recursive=True)
        env = {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": s3.endpoint_url,
        }
        url = f"s3://{s3.bucket}/statements"
        code, remote = status_json("--output", url, env=env)
        filesystem.rm(f"{s3.bucket}/statements/{SEPTEMBER}/chargeback-{SEPTEMBER}.csv")
        damaged_code, damaged = status_json("--output", url, env=env)
    _, local = status_json("--output", str(output.folder))

    assert code == 0
    assert remote["months"] == local["months"]
    assert damaged_code == 1
    [failed] = [m for m in damaged["months"] if not m["verified"]]
    assert failed["month"] == SEPTEMBER
    assert any(f"chargeback-{SEPTEMBER}.csv is listed but missing" in p for p in failed["problems"])


# --- diff ---------------------------------------------------------------------------------


def diff_json(output: Output, *args: str) -> dict[str, Any]:
    done = cli_run("diff", *args, "--output", str(output.folder), "--json")
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def test_diff_of_two_versions_is_the_late_calls_to_the_cent(output: Output) -> None:
    shown = diff_json(output, f"{OCTOBER}@v1", OCTOBER)

    [total] = [row for row in shown["cost_centers"] if row["id"] == "TOTAL"]
    assert Decimal(total["change"]["cost_usd"]) == close_run.LATE_COST
    for index, component in enumerate(close_run.COMPONENTS):
        expected = sum((Decimal(call[5 + index]) for call in close_run.LATE_CALLS), Decimal(0))
        assert Decimal(total["change"][f"{component}_usd"]) == expected, component
    centers = [row for row in shown["cost_centers"] if row["id"] != "TOTAL"]
    assert sum((Decimal(row["change"]["cost_usd"]) for row in centers), Decimal(0)) == Decimal(
        total["change"]["cost_usd"]
    )
    by_assistant: dict[str, Decimal] = {}
    for call in close_run.LATE_CALLS:
        assistant, cost = call[1], Decimal(call[4])
        if assistant:
            by_assistant[assistant] = by_assistant.get(assistant, Decimal(0)) + cost
    expected_order = sorted(by_assistant, key=lambda key: -by_assistant[key])
    changed = {
        row["id"]: Decimal(row["change"]["cost_usd"])
        for row in shown["assistants"]
        if Decimal(row["change"]["cost_usd"])
    }
    assert [row["id"] for row in shown["assistants"]][: len(expected_order)] == expected_order
    assert changed == by_assistant
    # Others may differ by a cent of cost_eur: the converted lines are rounded to the
    # converted total, which the late calls moved.
    others = [row for row in shown["assistants"] if row["id"] not in by_assistant]
    for row in others:
        assert {column for column, value in row["change"].items() if Decimal(value)} <= {
            "cost_eur"
        }, row
        assert abs(Decimal(row["change"]["cost_eur"])) <= Decimal("0.01"), row
    assert shown["assistants_changed"] == len(by_assistant) + sum(
        1 for row in others if Decimal(row["change"]["cost_eur"])
    )
    assert "cost_eur" in shown["columns"]


def test_diff_of_two_months_per_cost_center_matches_the_manifests(output: Output) -> None:
    shown = diff_json(output, SEPTEMBER, OCTOBER, "--top", "3")

    before = output.manifest(SEPTEMBER)["totals"]["cost_by_cost_center_usd"]
    after = output.manifest(OCTOBER)["totals"]["cost_by_cost_center_usd"]
    changes = {row["id"]: Decimal(row["change"]["cost_usd"]) for row in shown["cost_centers"]}
    for center in set(before) | set(after):
        expected = Decimal(after.get(center, "0")) - Decimal(before.get(center, "0"))
        assert changes[center] == expected, center
    totals = (output.manifest(month)["totals"]["cost_usd"] for month in (SEPTEMBER, OCTOBER))
    first, second = map(Decimal, totals)
    assert changes["TOTAL"] == second - first
    assert len(shown["assistants"]) == 3
    sizes = [abs(Decimal(row["change"]["cost_usd"])) for row in shown["assistants"]]
    assert sizes == sorted(sizes, reverse=True)


def test_diff_table_shows_the_total_and_the_top_assistants(output: Output) -> None:
    done = cli_run("diff", f"{OCTOBER}@v1", OCTOBER, "--output", str(output.folder), "--top", "2")

    assert done.returncode == 0, done.stderr
    total_row = next(line for line in done.stdout.splitlines() if line.startswith("TOTAL"))
    assert f"+{close_run.LATE_COST:,}" in total_row
    assert "Top 2 of " in done.stdout and "assistants whose money changed" in done.stdout


def test_diff_of_the_current_version_named_both_ways_changes_nothing(output: Output) -> None:
    """``2026-10@v2`` is the month folder's set (its manifest says version 2)."""
    shown = diff_json(output, OCTOBER, f"{OCTOBER}@v2")
    done = cli_run("diff", OCTOBER, f"{OCTOBER}@v2", "--output", str(output.folder))

    assert all(
        Decimal(value) == 0 for row in shown["cost_centers"] for value in row["change"].values()
    )
    [total] = [row for row in shown["cost_centers"] if row["id"] == "TOTAL"]
    assert total["b"]["cost_usd"] == output.manifest(OCTOBER)["totals"]["cost_usd"]
    assert shown["assistants"] == [] and shown["assistants_changed"] == 0
    assert done.stdout.rstrip().endswith("No assistant's money changed.")


def test_diff_of_a_month_not_published_exits_1(output: Output) -> None:
    done = cli_run("diff", "2026-12", OCTOBER, "--output", str(output.folder))

    assert done.returncode == 1
    assert done.stderr.startswith("vapi-chargeback: error: 2026-12 is not published")
    assert "Traceback" not in done.stderr


def test_diff_of_a_version_never_published_exits_1(output: Output) -> None:
    done = cli_run("diff", f"{OCTOBER}@v7", OCTOBER, "--output", str(output.folder))

    assert done.returncode == 1
    assert f"{OCTOBER} v7 is not published" in done.stderr


def test_diff_against_a_month_without_lines_compares_every_column_from_the_header() -> None:
    """An empty month's CSV has a header and no line: its money columns still count."""
    header = ["period", "cost_center_id", "assistant_id", "cost_usd", "llm_usd", "cost_eur"]
    empty = diff.Statement(header, [])
    line = dict.fromkeys(header, "")
    line.update(cost_center_id="sales", assistant_id="a1", cost_usd="2.50", llm_usd="1.00")
    full = diff.Statement([*header[:-1], "cost_gbp"], [line])

    shown = diff.compare(empty, full, top=5)

    assert shown["columns"] == ["cost_usd", "llm_usd"]
    assert shown["only_one_side"] == ["cost_eur", "cost_gbp"]
    [sales, total] = shown["cost_centers"]
    assert (sales["id"], sales["change"]) == ("sales", {"cost_usd": "2.50", "llm_usd": "1.00"})
    assert total["change"] == sales["change"] and total["a"]["cost_usd"] == "0.00"
    assert [row["id"] for row in shown["assistants"]] == ["a1"]
