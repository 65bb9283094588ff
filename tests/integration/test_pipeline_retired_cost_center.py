"""A retired cost center: its old months rerun byte-identically, later ones never charge it.

The demo org's ``marketing`` ends on 2026-09-30: chargeback.yaml gives it ``valid_to``, and
the mapping closes its assistants' rows that day and moves them to ``sales`` from October
(what finance does when a cost center is dissolved). Each month runs through the pipeline's
steps over real HTTP against the emulator, with ``marketing`` open (as shipped) and retired.
September must publish the same chargeback CSV and statement (lines, breakdowns,
reconciliation) both ways. In October the open run charges ``marketing`` (mapping, call
variable values, every pool); the retired run must not — no line, no pool share, no
workbook — and still add up to the same org total. A mapping row that charges
``marketing`` after its end is refused before anything is fetched, naming file, line,
field and what to do.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from vapi_chargeback import pipeline, statement_json
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.config import ConfigError
from vapi_chargeback.statement import Statement
from vapi_emulator.data import generate_calls_file
from vapi_emulator.server import run_emulator

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "include" / "config" / "chargeback.yaml"
MAPPING = CONFIG.with_name("assistant_teams.csv")
KEY = "sk-retired-cost-center-test"
OLD, NEW = "2026-09", "2026-10"
END, NEXT = "2026-09-30", "2026-10-01"
OWNER = "    owner_email: marketing@example.com\n"
POOLS = {"shared:platform-fee", "shared:phone-numbers", "shared:calls-without-assistant"}


def retire_marketing(mapping: str) -> str:
    """Close marketing's rows on its last day; its assistants go to sales from the next."""
    lines = []
    for line in mapping.splitlines(keepends=True):
        assistant, team, center, valid_from, valid_to = line.rstrip("\n").split(",")
        if center == "marketing" and valid_from > END:
            line = f"{assistant},{team},sales,{valid_from},{valid_to}\n"
        elif center == "marketing" and not valid_to:
            line = f"{assistant},{team},marketing,{valid_from},{END}\n"
            line += f"{assistant},{team},sales,{NEXT},\n"
        lines.append(line)
    return "".join(lines)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    calls = tmp_path_factory.mktemp("calls") / "calls.parquet"
    generate_calls_file(calls, OLD, months=2, calls_per_month=3_000)
    with run_emulator([calls], KEY) as url:
        yield url


def config_folder(folder: Path, *, retired: bool) -> Path:
    """The demo config and mapping, with ``marketing`` open (as shipped) or retired."""
    folder.mkdir()
    config, mapping = CONFIG.read_text(encoding="utf-8"), MAPPING.read_text(encoding="utf-8")
    if retired:
        assert OWNER in config, "the demo config changed; update the test"
        config = config.replace(OWNER, f"{OWNER}    valid_to: {END}\n", 1)
        mapping = retire_marketing(mapping)
    (folder / CONFIG.name).write_text(config, encoding="utf-8")
    (folder / MAPPING.name).write_text(mapping, encoding="utf-8")
    shutil.copy(CONFIG.with_name("fx_rates.csv"), folder)
    return folder / CONFIG.name


def settings(config: Path, output: Path, month: str) -> pipeline.RunSettings:
    return pipeline.RunSettings(
        config_path=str(config),
        output_url=output.as_uri(),
        default_output_url=output.as_uri(),
        month=month,
        run_id="retired-test",
    )


def run_month(base_url: str, config: Path, output: Path, month: str) -> pipeline.RunInfo:
    run = pipeline.plan_run(settings(config, output, month))
    with VapiAnalyticsClient(base_url, KEY) as client:
        fetched = [
            pipeline.fetch_batch(run, index, client).model_dump(mode="json")
            for index in range(run.batch_count)
        ]
    pipeline.publish_run(run, pipeline.reconcile_run(run, pipeline.allocate_run(run, fetched)))
    return run


def statement(run: pipeline.RunInfo) -> Statement:
    folder = pipeline.default_open_path(run.work_url)
    return statement_json.loads(bytes((folder / pipeline.RECONCILED_FILE).read_bytes()), folder)


def csv_rows(output: Path, month: str) -> list[dict[str, str]]:
    text = (output / month / f"chargeback-{month}.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def test_an_old_month_reruns_byte_identically_after_its_cost_center_retired(
    base_url: str, tmp_path: Path
) -> None:
    open_run = run_month(
        base_url, config_folder(tmp_path / "open", retired=False), tmp_path / "a", OLD
    )
    retired_run = run_month(
        base_url, config_folder(tmp_path / "retired", retired=True), tmp_path / "b", OLD
    )

    name = f"{OLD}/chargeback-{OLD}.csv"
    published = (tmp_path / "b" / name).read_bytes()
    assert published == (tmp_path / "a" / name).read_bytes()
    assert b",marketing,Marketing,lead-qualification," in published
    assert b",marketing,Marketing,,,shared:platform-fee," in published
    assert (tmp_path / "b" / OLD / "cost-centers" / f"marketing-{OLD}.xlsx").exists()
    first, second = statement(open_run), statement(retired_run)
    assert (second.lines, second.breakdowns, second.reconciliation) == (
        first.lines,
        first.breakdowns,
        first.reconciliation,
    )
    assert retired_run.mapping_sha256 != open_run.mapping_sha256


def test_after_its_end_a_retired_cost_center_gets_no_charge_no_share_and_no_statement(
    base_url: str, tmp_path: Path
) -> None:
    run_month(base_url, config_folder(tmp_path / "open", retired=False), tmp_path / "a", NEW)
    run_month(base_url, config_folder(tmp_path / "retired", retired=True), tmp_path / "b", NEW)
    still_open, retired = csv_rows(tmp_path / "a", NEW), csv_rows(tmp_path / "b", NEW)

    charged = [row for row in still_open if row["cost_center_id"] == "marketing"]
    assert {row["allocation"] for row in charged} == {"direct", *POOLS}
    assert any(row["team"] == "" for row in charged if row["allocation"] == "direct"), (
        "the open run must charge marketing by call variable value too, or this proves little"
    )
    assert [row for row in retired if row["cost_center_id"] == "marketing"] == []
    assert not (tmp_path / "b" / NEW / "cost-centers" / f"marketing-{NEW}.xlsx").exists()
    for pool in POOLS:
        shares = [row for row in retired if row["allocation"] == pool]
        assert {row["cost_center_id"] for row in shares} == {"sales", "support", "operations"}
    fee = [row for row in retired if row["allocation"] == "shared:platform-fee"]
    assert sum(Decimal(row["cost_usd"]) for row in fee) == Decimal("500.00")
    assert sum(Decimal(row["cost_usd"]) for row in retired) == sum(
        Decimal(row["cost_usd"]) for row in still_open
    )


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        pytest.param(
            "0b5f3d2a-1c4e-4f6a-9b8d-7e6f5a4b3c2d,campaigns,marketing,2026-12-01,\n",
            f"valid_to is empty: the row charges cost center 'marketing' after {END}",
            id="open-ended",
        ),
        pytest.param(
            "0b5f3d2a-1c4e-4f6a-9b8d-7e6f5a4b3c2d,campaigns,marketing,2026-09-01,2026-10-31\n",
            f"valid_to 2026-10-31 charges cost center 'marketing' after {END}",
            id="ends-after",
        ),
    ],
)
def test_a_new_mapping_row_for_the_retired_cost_center_is_refused(
    row: str, problem: str, tmp_path: Path
) -> None:
    config = config_folder(tmp_path / "config", retired=True)
    mapping = config.with_name(MAPPING.name)
    lines = mapping.read_text(encoding="utf-8").splitlines(keepends=True)
    line = len(lines) + 1
    mapping.write_text("".join(lines) + row, encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        pipeline.plan_run(settings(config, tmp_path / "output", OLD))

    assert caught.value.problems == [
        f"{mapping}:{line}: {problem}, the last day it is charged (its valid_to in"
        f" chargeback.yaml); end the row on or before {END}, and map the assistant to a"
        f" cost center still charged from {NEXT} in a row of its own"
    ]
    assert not (tmp_path / "output").exists(), "a refused mapping writes nothing"
