"""A cost center retired after a month reruns that month byte-identically; new rows are refused.

The demo org's ``marketing`` ends on 2026-10-31: chargeback.yaml gives it ``valid_to``, and
the mapping closes its assistants' rows that day and moves them to ``sales`` from
November in rows of their own (what finance does when a cost center is dissolved). October,
rerun through the pipeline's steps over real HTTP against the emulator, must publish the
same chargeback CSV and the same statement (lines, breakdowns, reconciliation) as with
``marketing`` still open. A mapping row that charges ``marketing`` after its end is refused
before anything is fetched, naming file, line, field and what to do.
"""

from __future__ import annotations

from collections.abc import Iterator
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
MONTH = "2026-10"
OWNER = "    owner_email: marketing@example.com\n"
RETIRED = OWNER + "    valid_to: 2026-10-31\n"


def retire_marketing(mapping: str) -> str:
    """Close marketing's open rows on its last day; its assistants go to sales from November."""
    lines = []
    for line in mapping.splitlines(keepends=True):
        assistant, team, center, valid_from, valid_to = line.rstrip("\n").split(",")
        if center == "marketing" and not valid_to:
            line = f"{assistant},{team},marketing,{valid_from},2026-10-31\n"
            line += f"{assistant},{team},sales,2026-11-01,\n"
        lines.append(line)
    return "".join(lines)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    calls = tmp_path_factory.mktemp("calls") / "calls.parquet"
    generate_calls_file(calls, MONTH, calls_per_month=3_000)
    with run_emulator([calls], KEY) as url:
        yield url


def config_folder(folder: Path, *, retired: bool) -> Path:
    """The demo config and mapping, with ``marketing`` open (as shipped) or retired."""
    folder.mkdir()
    config, mapping = CONFIG.read_text(encoding="utf-8"), MAPPING.read_text(encoding="utf-8")
    if retired:
        assert OWNER in config, "the demo config changed; update the test"
        config = config.replace(OWNER, RETIRED, 1)
        mapping = retire_marketing(mapping)
    (folder / CONFIG.name).write_text(config, encoding="utf-8")
    (folder / MAPPING.name).write_text(mapping, encoding="utf-8")
    return folder / CONFIG.name


def settings(config: Path, output: Path) -> pipeline.RunSettings:
    return pipeline.RunSettings(
        config_path=str(config),
        output_url=output.as_uri(),
        default_output_url=output.as_uri(),
        month=MONTH,
        run_id="retired-test",
    )


def run_october(base_url: str, config: Path, output: Path) -> pipeline.RunInfo:
    run = pipeline.plan_run(settings(config, output))
    with VapiAnalyticsClient(base_url, KEY) as client:
        fetched = [
            pipeline.fetch_batch(run, index, client).model_dump(mode="json")
            for index in range(run.batch_count)
        ]
    pipeline.publish_run(run, pipeline.reconcile_run(run, pipeline.allocate_run(run, fetched)))
    return run


def statement(run: pipeline.RunInfo) -> Statement:
    folder = pipeline.default_open_path(run.work_url)
    return statement_json.loads(bytes((folder / pipeline.RECONCILED_FILE).read_bytes()))


def test_an_old_month_reruns_byte_identically_after_its_cost_center_retired(
    base_url: str, tmp_path: Path
) -> None:
    open_run = run_october(
        base_url, config_folder(tmp_path / "open", retired=False), tmp_path / "a"
    )
    retired_run = run_october(
        base_url, config_folder(tmp_path / "retired", retired=True), tmp_path / "b"
    )

    csv = f"{MONTH}/chargeback-{MONTH}.csv"
    published = (tmp_path / "b" / csv).read_bytes()
    assert published == (tmp_path / "a" / csv).read_bytes()
    assert b",marketing,Marketing,lead-qualification," in published
    assert b",marketing,Marketing,,,shared:platform-fee," in published
    assert (tmp_path / "b" / MONTH / "cost-centers" / f"marketing-{MONTH}.xlsx").exists()
    first, second = statement(open_run), statement(retired_run)
    assert (second.lines, second.breakdowns, second.reconciliation) == (
        first.lines,
        first.breakdowns,
        first.reconciliation,
    )
    assert retired_run.mapping_sha256 != open_run.mapping_sha256


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        pytest.param(
            "0b5f3d2a-1c4e-4f6a-9b8d-7e6f5a4b3c2d,campaigns,marketing,2026-12-01,\n",
            "valid_to is empty: the row charges cost center 'marketing' after 2026-10-31",
            id="open-ended",
        ),
        pytest.param(
            "0b5f3d2a-1c4e-4f6a-9b8d-7e6f5a4b3c2d,campaigns,marketing,2026-11-01,2026-11-30\n",
            "valid_to 2026-11-30 charges cost center 'marketing' after 2026-10-31",
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
        pipeline.plan_run(settings(config, tmp_path / "output"))

    assert caught.value.problems == [
        f"{mapping}:{line}: {problem}, the last day it is charged (its valid_to in"
        " chargeback.yaml); end the row on or before 2026-10-31, and map the assistant to a"
        " cost center still charged from 2026-11-01 in a row of its own"
    ]
    assert not (tmp_path / "output").exists(), "a refused mapping writes nothing"
