"""A mapping with upper-case assistant ids publishes, through the real DAG, the statement of
the same mapping in lower case.

SQL Server and .NET write UUIDs in upper case; the API answers them in lower case. Before
issue 17 such a mapping loaded without a word and matched nothing, so every assistant's
cost landed in ``unallocated:unmapped-assistant``. Here the demo mapping runs October with
``airflow dags test`` twice against one emulator, once as shipped (lower case) and once
with every ``assistant_id`` upper-cased: the chargeback CSV must be byte-identical. Only
the mapping's hash differs, and it lives in the manifest (and the workbooks' provenance
sheet, which shows the inputs' hash), not in the CSV.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from vapi_chargeback import localrun

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "include" / "config" / "chargeback.yaml"
MAPPING = CONFIG.with_name("assistant_teams.csv")
MONTH = "2026-10"
CALLS_PER_MONTH = 3000
CSV = f"chargeback-{MONTH}.csv"

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    work = tmp_path_factory.mktemp("emulator")
    calls = work / "calls.parquet"
    localrun.generate_calls(calls, month=MONTH, months=1, calls_per_month=CALLS_PER_MONTH)
    api_key = secrets.token_urlsafe(16)
    with localrun.serve_emulator([calls], api_key, log=work / "access.log") as base_url:
        yield base_url, api_key


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated Airflow home for both runs; each run brings its own config and output."""
    path = tmp_path_factory.mktemp("airflow-home")
    localrun.migrate(
        localrun.airflow_env(
            project_dir=ROOT,
            airflow_home=path,
            api_base_url="http://127.0.0.1:9",
            api_key="unused",
            output_url=path.as_uri(),
        )
    )
    return path


def upper_case_ids(mapping: str) -> str:
    """The mapping with its ``assistant_id`` column upper-cased, as a SQL Server export has it."""
    header, *rows = mapping.splitlines(keepends=True)
    return header + "".join(
        assistant_id.upper() + "," + rest
        for assistant_id, _, rest in (row.partition(",") for row in rows)
    )


def config_folder(folder: Path, mapping: str) -> Path:
    folder.mkdir()
    shutil.copy(CONFIG, folder / CONFIG.name)
    shutil.copy(CONFIG.with_name("fx_rates.csv"), folder)
    (folder / MAPPING.name).write_text(mapping, encoding="utf-8")
    return folder / CONFIG.name


def run_october(emulator: tuple[str, str], home: Path, config: Path, output: Path) -> Path:
    base_url, api_key = emulator
    env = localrun.airflow_env(
        project_dir=ROOT,
        airflow_home=home,
        api_base_url=base_url,
        api_key=api_key,
        output_url=output.as_uri(),
        config_path=config,
    )
    localrun.dags_test(date(2026, 11, 1), env, log_name=f"dags-test-{output.name}.log")
    return output / MONTH


def manifest(folder: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    return document


def test_upper_case_assistant_ids_publish_the_same_statement_as_lower_case(
    emulator: tuple[str, str], home: Path, tmp_path: Path
) -> None:
    lower = MAPPING.read_text(encoding="utf-8")
    upper = upper_case_ids(lower)
    assert upper != lower and upper.lower() == lower.lower(), "every id must change case"

    expected = run_october(emulator, home, config_folder(tmp_path / "lower", lower), tmp_path / "a")
    published = run_october(
        emulator, home, config_folder(tmp_path / "upper", upper), tmp_path / "b"
    )

    assert (published / CSV).read_bytes() == (expected / CSV).read_bytes()
    assert b",direct," in (expected / CSV).read_bytes(), "the mapping must allocate something"
    assert sorted(p.relative_to(published) for p in published.rglob("*")) == sorted(
        p.relative_to(expected) for p in expected.rglob("*")
    )
    first, second = manifest(expected), manifest(published)
    assert first["mapping_sha256"] != second["mapping_sha256"]
    assert (second["totals"], second["reconciliation"]) == (
        first["totals"],
        first["reconciliation"],
    )
