"""Hostile text from the API or the mapping reaches neither a path nor a formula.

Values a person or the API controls — team names in the mapping, assistant ids and
call variables in responses, the Airflow run id — are either validated where they
enter (ids are slugs, control characters are refused: see the bad-input table) or
used only as data: written as text cells (``'``-prefixed in the CSV, ``quotePrefix``
inline strings in the workbooks, never formulas) and never joined into a path. The
emulator, for its part, listens on loopback unless told otherwise and refuses large
bodies before reading them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openpyxl
import pytest

from vapi_chargeback import localrun
from vapi_chargeback.mapping import canonical_assistant_id
from vapi_chargeback.pipeline import RunSettings, plan_run, safe_name
from vapi_chargeback.storage import read_published
from vapi_emulator import cli
from vapi_emulator.app import MAX_BODY_BYTES
from vapi_emulator.data import generate_calls_file

from support.reliability import (
    DEMO_CONFIG,
    DEMO_MAPPING,
    KEY,
    MONTH,
    emulator,
    make_client,
    run_pipeline,
)

FORMULA_TEAMS = ["=cmd|' /C calc'!A0", "+SUM(1,2)", "-2+3", "@evil"]
FORMULA_ASSISTANTS = ['=HYPERLINK("http://evil.example","click")', "@SUM(A1:A9)"]
PATH_ASSISTANT = "../../../../escape-from-the-month"
CANONICAL_FORMULA_ASSISTANTS = [canonical_assistant_id(a) for a in FORMULA_ASSISTANTS]
"""As the statements show them: assistant ids compare case-insensitively, so they are lower-cased."""
HOSTILE_VARIABLES = ["../../etc/passwd-cc", "=1+1", "sales/../support"]


def hostile_calls(path: Path) -> Path:
    """Calls whose assistant ids and cost-center variables are attacks, not ids."""
    records: list[dict[str, object]] = [
        {"assistantId": assistant, "cost": 1.25}
        for assistant in [*FORMULA_ASSISTANTS, PATH_ASSISTANT]
    ]
    records += [
        {
            "assistantId": "5a0c1a70-0000-4000-8000-00000000beef",
            "cost": 2.5,
            "assistantOverrides": {"variableValues": {"costCenter": value}},
        }
        for value in HOSTILE_VARIABLES
    ]
    lines = []
    for index, record in enumerate(records):
        lines.append(
            json.dumps(
                {
                    "id": f"hostile-{index}",
                    "createdAt": "2026-10-12T10:00:00.000Z",
                    "startedAt": "2026-10-12T10:00:00.000Z",
                    "endedAt": "2026-10-12T10:02:00.000Z",
                    **record,
                }
            )
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def hostile_mapping_config(folder: Path) -> Path:
    """The demo config with a mapping whose first teams are spreadsheet formulas."""
    folder.mkdir()
    rows = DEMO_MAPPING.read_text(encoding="utf-8").splitlines()
    for index, team in enumerate(FORMULA_TEAMS, start=1):
        assistant, _, center, start, end = next(csv.reader([rows[index]]))
        rows[index] = _csv_line([assistant, team, center, start, end])
    (folder / DEMO_MAPPING.name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / DEMO_CONFIG.name).write_bytes(DEMO_CONFIG.read_bytes())
    (folder / "fx_rates.csv").write_bytes(DEMO_CONFIG.with_name("fx_rates.csv").read_bytes())
    return folder / DEMO_CONFIG.name


def _csv_line(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(cells)
    return buffer.getvalue()


def all_files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """October published from hostile inputs; yields (sandbox root, output folder)."""
    root = tmp_path_factory.mktemp("sandbox")
    calls = root / "calls.parquet"
    generate_calls_file(calls, MONTH, calls_per_month=2_000)
    hostile = hostile_calls(root / "hostile.jsonl")
    config = hostile_mapping_config(root / "config")
    output = root / "deep" / "output"
    before = all_files(root)
    with emulator([calls, hostile]) as api, make_client(api.base_url) as client:
        run_pipeline(output, client, run_id="hostile", config=config)
    created = all_files(root) - before
    assert created and all(name.startswith("deep/output/") for name in created), created
    yield root, output


def test_nothing_is_written_outside_the_output_folder(published: tuple[Path, Path]) -> None:
    root, output = published
    assert not (root / "escape-from-the-month").exists()
    month = output / MONTH
    assert {path.relative_to(month).as_posix() for path in month.rglob("*") if path.is_file()} == {
        f"chargeback-{MONTH}.csv",
        f"chargeback-{MONTH}.xlsx",
        f"focus-{MONTH}.csv",
        f"journal-{MONTH}.csv",
        "manifest.json",
        *(
            f"cost-centers/{center}-{MONTH}.xlsx"
            for center in ("sales", "support", "marketing", "operations")
        ),
    }
    assert read_published(output, MONTH) is not None


def test_formula_text_is_written_as_text_in_the_csv(published: tuple[Path, Path]) -> None:
    _, output = published
    with (output / MONTH / f"chargeback-{MONTH}.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    teams = {row["team"] for row in rows}
    assistants = {row["assistant_id"] for row in rows}
    for team in FORMULA_TEAMS:
        assert f"'{team}" in teams and team not in teams
    for assistant in CANONICAL_FORMULA_ASSISTANTS:
        assert f"'{assistant}" in assistants and assistant not in assistants
    assert PATH_ASSISTANT in assistants, "a path-like id is data: kept as it is, used in no path"


def test_formula_text_is_written_as_text_in_the_focus_file(published: tuple[Path, Path]) -> None:
    """FOCUS keeps names and ids as text, guarded like the CSV; its descriptions stay ASCII and
    the raw values only inside the JSON Tags, which begin with a brace."""
    _, output = published
    with (output / MONTH / f"focus-{MONTH}.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    teams = {row["x_Team"] for row in rows}
    assistants = {row["x_AssistantId"] for row in rows} | {row["ResourceId"] for row in rows}
    for team in FORMULA_TEAMS:
        assert f"'{team}" in teams and team not in teams
    for assistant in CANONICAL_FORMULA_ASSISTANTS:
        assert f"'{assistant}" in assistants and assistant not in assistants
    assert all(row["ChargeDescription"].isascii() for row in rows)
    assert FORMULA_TEAMS[0] in {json.loads(row["Tags"]).get("team") for row in rows}


def test_formula_text_is_a_quoted_string_cell_in_every_workbook(
    published: tuple[Path, Path],
) -> None:
    _, output = published
    hostile = [*FORMULA_TEAMS, *CANONICAL_FORMULA_ASSISTANTS]
    found: set[str] = set()
    for path in sorted((output / MONTH).rglob("*.xlsx")):
        workbook = openpyxl.load_workbook(path)
        for sheet in workbook.worksheets:
            for row in sheet.iter_rows():
                for cell in row:
                    assert cell.data_type != "f", (
                        f"{path.name}!{sheet.title}!{cell.coordinate} is a formula"
                    )
                    if cell.value in hostile:
                        assert cell.data_type == "s" and cell.quotePrefix, cell.coordinate
                        found.add(str(cell.value))
    assert found == set(hostile)


def test_hostile_variable_values_reach_no_file(published: tuple[Path, Path]) -> None:
    """A variable value only ever selects a cost center by exact match; it is never written."""
    _, output = published
    published_bytes = b"".join(
        path.read_bytes() for path in (output / MONTH).rglob("*") if path.is_file()
    )
    for value in HOSTILE_VARIABLES:
        assert value.encode() not in published_bytes
    with (output / MONTH / f"chargeback-{MONTH}.csv").open(encoding="utf-8", newline="") as handle:
        reasons = {row["allocation"] for row in csv.DictReader(handle)}
    assert "unallocated:unknown-cost-center" in reasons


@pytest.mark.parametrize(
    "run_id", ["..", ".", "../../../escape", ".hidden", "manual__2026-11-01T00:00:00+00:00", ""]
)
def test_run_ids_become_one_harmless_folder_under_the_month(tmp_path: Path, run_id: str) -> None:
    output = tmp_path / "output"
    settings = RunSettings(
        config_path=str(DEMO_CONFIG),
        output_url=output.as_uri(),
        default_output_url=output.as_uri(),
        month=MONTH,
        run_id=run_id,
    )
    work = Path(plan_run(settings).work_url.removeprefix("file://"))
    assert work.resolve().parent == (output / "_runs" / MONTH).resolve()
    assert work.name == safe_name(run_id) and not work.name.startswith(".")
    assert (work / "plan.json").is_file()


def _listening_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port``, from the kernel's socket table."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port and len(address) == width:
                found.add(address)
    return found


def test_emulator_listens_on_loopback_only_by_default(tmp_path: Path) -> None:
    calls = tmp_path / "calls.parquet"
    generate_calls_file(calls, MONTH, calls_per_month=100)
    port = localrun.free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            str(localrun.BIN / "vapi-emulator"),
            "serve",
            "--calls",
            str(calls),
            "--port",
            str(port),
            "--api-key",
            KEY,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (
                tmp_path / "serve.log"
            ).read_text()
            time.sleep(0.2)
        assert _listening_addresses(port) == {"0100007F"}, "bound to 127.0.0.1 and nothing else"
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def test_emulator_refuses_a_body_over_the_limit_before_reading_it(tmp_path: Path) -> None:
    calls = tmp_path / "calls.parquet"
    generate_calls_file(calls, MONTH, calls_per_month=100)
    with emulator([calls]) as api:
        oversized = httpx.post(
            f"{api.base_url}/analytics",
            content=b"{" + b" " * MAX_BODY_BYTES + b"}",
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        )
        assert oversized.status_code == 413
        assert oversized.json()["message"] == f"request body larger than {MAX_BODY_BYTES} bytes"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(
            ["--max-calls-file-bytes", "1000"],
            r"calls\.parquet is [\d,]+ bytes, over --max-calls-file-bytes=1,000",
            id="call-file-over-the-size-limit",
        ),
        pytest.param(
            ["--faults", "rate=2,kinds=429"],
            r"rate=2\.0 must be between 0 and 1",
            id="bad-fault-spec",
        ),
    ],
)
def test_emulator_refuses_to_serve_before_loading_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    calls = tmp_path / "calls.parquet"
    generate_calls_file(calls, MONTH, calls_per_month=100)

    code = cli.main(["serve", "--calls", str(calls), "--api-key", KEY, *arguments])

    assert code == cli.EXIT_BAD_INPUT
    assert re.search(message, capsys.readouterr().err)
