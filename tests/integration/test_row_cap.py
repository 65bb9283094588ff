"""The row cap over real HTTP: planned windows stay under it, and an over-cap answer is split.

Against the emulator (in this process, so its cap can be lowered):

- a 2,000-assistant org with a day × ``endedReason`` definition: every planned query is
  answered within the stock cap with no query split, and each answers no more rows than
  the plan estimated;
- the demo org with the cap lowered to a few dozen rows: every query is refused at
  first, split in halves until it fits, and the month's statement files are the same
  bytes as with the stock cap;
- a cap no piece can meet fails after the bounded number of halvings, naming the query.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from vapi_chargeback import pipeline, runner, workfolder
from vapi_chargeback.analytics.checked import checked_fingerprint
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.decode import iter_json_array
from vapi_chargeback.analytics.row_cap import MAX_HALVINGS, PIECE_MARK, RowCapError
from vapi_chargeback.plan import Plan
from vapi_chargeback.row_budget import ROW_BUDGET, ROW_CAP
from vapi_chargeback.workfolder import FetchedBatch, RunStateError, StoredResults
from vapi_emulator import engine
from vapi_emulator.data import generate_calls_file
from vapi_emulator.org import demo_org, render_mapping_csv
from vapi_emulator.server import run_emulator

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "include" / "config"
KEY = "sk-row-cap-test"
MONTH = "2026-10"
LARGE_ASSISTANTS = 2_000
LARGE_CALLS = 250_000
"""Four calls per assistant a day: enough for every assistant to show several end reasons."""
CAP = 200
"""The lowered cap: below what most of the demo month's queries answer, above one day's rows."""


def _org(folder: Path, assistants: int | None = None) -> Path:
    """The demo config in ``folder``: with a day × endedReason definition, and for
    ``assistants`` the mapping of the demo org of that size."""
    shutil.copytree(DEMO, folder, dirs_exist_ok=True)
    config_path = folder / "chargeback.yaml"
    document = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    document["cost_centers"][0]["queries"].append(
        {
            "id": "reasons-by-day",
            "title": "Calls by end reason by day",
            "dimensions": ["endedReason"],
            "step": "day",
            "metrics": ["calls", "minutes"],
        }
    )
    config_path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    if assistants is not None:
        mapping = render_mapping_csv(demo_org(assistants=assistants))
        (folder / document["mapping"]).write_text(mapping, encoding="utf-8")
    return config_path


def _run(base_url: str, config: Path, output: Path) -> runner.MonthRun:
    settings = pipeline.RunSettings(
        config_path=str(config),
        output_url=output.as_uri(),
        default_output_url=output.as_uri(),
        month=MONTH,
        run_id="row-cap-test",
    )
    with VapiAnalyticsClient(base_url, KEY) as client:
        return runner.run_month(settings, client)


def _rows(work: Path, fetched: Sequence[FetchedBatch | dict[str, Any]]) -> dict[str, int]:
    """Rows per stored result (planned query or piece) of a run's fetched batches."""
    files = [batch.file if isinstance(batch, FetchedBatch) else batch["file"] for batch in fetched]
    return {
        item["name"]: len(item["result"])
        for file in files
        for item, _, _ in iter_json_array((work / "raw" / file).read_bytes())
    }


def _month_rows(month: runner.MonthRun) -> dict[str, int]:
    return _rows(Path(month.run.work_url.removeprefix("file://")), month.fetched)


@pytest.fixture(scope="module")
def demo_calls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    calls = tmp_path_factory.mktemp("demo") / "calls.parquet"
    generate_calls_file(calls, MONTH, calls_per_month=3_000)
    return calls


@pytest.fixture(scope="module")
def demo_url(demo_calls: Path) -> Iterator[str]:
    with run_emulator([demo_calls], KEY) as url:
        yield url


def test_a_2000_assistant_day_by_ended_reason_month_stays_within_the_cap(
    tmp_path: Path,
) -> None:
    """Planned and fetched as a run does (the steps after fetch are the demo test's)."""
    calls = tmp_path / "calls.parquet"
    generate_calls_file(calls, MONTH, calls_per_month=LARGE_CALLS, assistants=LARGE_ASSISTANTS)
    config = _org(tmp_path / "config", LARGE_ASSISTANTS)
    output = (tmp_path / "out").as_uri()
    run = pipeline.plan_run(
        pipeline.RunSettings(
            config_path=str(config),
            output_url=output,
            default_output_url=output,
            month=MONTH,
            run_id="row-cap-test",
        )
    )
    with run_emulator([calls], KEY) as url, VapiAnalyticsClient(url, KEY) as client:
        fetched = [pipeline.fetch_batch(run, index, client) for index in range(run.batch_count)]

    work = Path(run.work_url.removeprefix("file://"))
    plan = Plan.model_validate_json((work / "plan.json").read_bytes())
    rows = _rows(work, fetched)
    assert not any(batch.pieces for batch in fetched)
    assert sorted(rows) == sorted(plan.query_names)
    assert len(plan.parts("by-reason")) > 1
    for name, count in rows.items():
        assert count <= plan.estimated_rows[name] <= ROW_BUDGET < ROW_CAP, name
    assert sum(rows[name] for name in plan.parts("by-reason")) > LARGE_ASSISTANTS * 31


def test_an_over_cap_answer_is_split_and_the_statement_is_the_same(
    demo_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _org(tmp_path / "config")
    stock = _run(demo_url, config, tmp_path / "stock")
    monkeypatch.setattr(engine, "MAX_RESULT_ROWS", CAP)
    capped = _run(demo_url, config, tmp_path / "capped")

    pieces = {name: parts for batch in capped.fetched for name, parts in batch["pieces"].items()}
    rows = _month_rows(capped)
    assert not any(batch["pieces"] for batch in stock.fetched)
    assert stock.run.batch_count == capped.run.batch_count
    assert len(pieces) >= 3
    assert all(count <= CAP for count in rows.values())
    assert all(PIECE_MARK in name for parts in pieces.values() for name in parts)
    stock_rows = _month_rows(stock)
    for name, parts in pieces.items():
        assert sum(rows[part] for part in parts) >= stock_rows[name]
    work = Path(capped.run.work_url.removeprefix("file://"))
    plan = Plan.model_validate_json((work / "plan.json").read_bytes())
    for batch in capped.fetched:
        queries = [plan.query(name) for name in plan.batches[batch["index"]]]
        assert batch["checked"] == checked_fingerprint(queries), "pieces checked by the fetch"
    stock_files = _statement_files(tmp_path / "stock" / MONTH)
    assert stock_files and stock_files == _statement_files(tmp_path / "capped" / MONTH)


def _statement_files(folder: Path) -> dict[str, bytes]:
    """The month's published statement files, the workbooks' members unzipped, with the
    figures that must differ blanked: the hashes of the raw responses and of the run's
    inputs, which include them (asked in pieces, they are other bytes). The manifest,
    which lists those hashes, is left out."""
    files: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if not path.is_file() or "manifest" in path.name:
            continue
        if path.suffix != ".xlsx":
            files[name] = path.read_bytes()
            continue
        with zipfile.ZipFile(path) as workbook:
            for member in workbook.namelist():
                files[f"{name}/{member}"] = _INPUTS_HASH.sub(rb"\1-", workbook.read(member))
    return files


_INPUTS_HASH = re.compile(rb"((?:Inputs|Response [\w.-]+) sha256</t>.*?<t>)[0-9a-f]{64}")


def test_a_cap_no_piece_meets_fails_after_bounded_halvings(
    demo_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _org(tmp_path / "config")
    monkeypatch.setattr(engine, "MAX_RESULT_ROWS", 0)

    with pytest.raises(RowCapError, match=f"after {MAX_HALVINGS} halvings") as raised:
        _run(demo_url, config, tmp_path / "out")

    assert PIECE_MARK in str(raised.value)
    assert not (tmp_path / "out" / MONTH).exists()


def test_stored_bodies_are_read_when_used_and_held_to_their_hash(
    demo_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Later steps read a raw body when they first need one of its queries (reconcile needs
    one batch of a month's many), hold few, and still refuse one altered since the fetch."""
    month = _run(demo_url, _org(tmp_path / "config"), tmp_path / "out")
    work = Path(month.run.work_url.removeprefix("file://"))
    plan = Plan.model_validate_json((work / "plan.json").read_bytes())
    fetched = [FetchedBatch.model_validate(item) for item in month.fetched]
    for batch in fetched:
        queries = [plan.query(name) for name in plan.batches[batch.index]]
        assert batch.checked == checked_fingerprint(queries), "the fetch records its check"
    everything = {name: StoredResults(work, plan, fetched)[name] for name in plan.query_names}
    monkeypatch.setattr(workfolder, "HELD_BODY_BYTES", 1)

    held_one = StoredResults(work, plan, fetched)
    assert {name: held_one[name] for name in reversed(plan.query_names)} == everything

    raw = work / "raw" / fetched[0].file
    raw.write_bytes(raw.read_bytes().replace(b"sum_cost", b"sum_c0st", 1))
    altered = StoredResults(work, plan, fetched)
    with pytest.raises(RunStateError, match="does not match its recorded sha256"):
        altered[plan.batches[0][0]]
