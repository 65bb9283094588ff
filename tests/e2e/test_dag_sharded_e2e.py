"""The real DAG with allocate spread over three shards publishes the statement of one allocation.

``airflow dags test`` runs October with ``allocate_shards: 3``: ``allocate_shard`` is
mapped over shards 0..2 (task instances with those map indexes, all successful), each
summing the stored batches it was dealt (every batch by exactly one shard; with fewer
batches than shards some shards sum none), and ``allocate`` merges and rounds. The CSV
must be byte for byte the one ``runner.run_month`` publishes from the same calls with one
shard, and the manifest's totals and reconciliation the same.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from vapi_chargeback import localrun, pipeline, runner
from vapi_chargeback.analytics.client import VapiAnalyticsClient

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "include" / "config" / "chargeback.yaml"
MONTH = "2026-10"
SHARDS = 3
CSV = f"chargeback-{MONTH}.csv"

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    work = tmp_path_factory.mktemp("emulator")
    calls = work / "calls.parquet"
    localrun.generate_calls(calls, month=MONTH, months=1, calls_per_month=3000)
    api_key = secrets.token_urlsafe(16)
    with localrun.serve_emulator([calls], api_key, log=work / "access.log") as base_url:
        yield base_url, api_key


def manifest(folder: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    return document


def mapped_states(database: Path, task_id: str) -> dict[int, str]:
    """Map index → state of the one run's instances of ``task_id``, from the metadata DB."""
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT map_index, state FROM task_instance WHERE dag_id = ? AND task_id = ?",
            (localrun.DAG_ID, task_id),
        ).fetchall()
    return {int(index): str(state) for index, state in rows}


def shard_results(database: Path) -> dict[int, dict[str, Any]]:
    """Map index → what each ``allocate_shard`` handed the merge (its XCom)."""
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT map_index, value FROM xcom WHERE dag_id = ? AND task_id = ?"
            " AND key = 'return_value'",
            (localrun.DAG_ID, "allocate_shard"),
        ).fetchall()
    results: dict[int, dict[str, Any]] = {}
    for index, value in rows:
        document = json.loads(value)
        results[int(index)] = json.loads(document) if isinstance(document, str) else document
    return results


def test_the_dag_with_three_shards_publishes_the_statement_of_one(
    emulator: tuple[str, str], tmp_path: Path
) -> None:
    base_url, api_key = emulator
    home, sharded, single = tmp_path / "home", tmp_path / "sharded", tmp_path / "single"
    env = localrun.airflow_env(
        project_dir=ROOT,
        airflow_home=home,
        api_base_url=base_url,
        api_key=api_key,
        output_url=sharded.as_uri(),
        config_path=CONFIG,
    )
    localrun.migrate(env)
    conf = json.dumps({"allocate_shards": SHARDS})
    log = localrun.dags_test(
        date(2026, 11, 1),
        env,
        log_name="dags-test-sharded.log",
        extra_args=["--conf", conf, *localrun.KEEP_DRAFT],
    )
    settings = pipeline.RunSettings(
        config_path=str(CONFIG),
        output_url=single.as_uri(),
        default_output_url=single.as_uri(),
        month=MONTH,
        run_id="one-shard",
    )
    with VapiAnalyticsClient(base_url, api_key) as client:
        reference = runner.run_month(settings, client, allocate_shards=1)

    database = home / "airflow.db"
    assert mapped_states(database, "allocate_shard") == dict.fromkeys(range(SHARDS), "success")
    assert mapped_states(database, "partition") == {}, "no task cuts the batches any more"
    summed = shard_results(database)
    assert sorted(summed) == list(range(SHARDS))
    assert sorted(b for part in summed.values() for b in part["batches"]) == list(
        range(reference.run.batch_count)
    ), summed
    assert mapped_states(database, "allocate") == {-1: "success"}
    assert "allocate_shard[0]" not in reference.step_seconds
    assert (sharded / MONTH / CSV).read_bytes() == (single / MONTH / CSV).read_bytes(), log
    first, second = manifest(single / MONTH), manifest(sharded / MONTH)
    assert (second["totals"], second["reconciliation"]) == (
        first["totals"],
        first["reconciliation"],
    )
    work = next((sharded / "_runs" / MONTH).iterdir()) / "shards" / f"of-{SHARDS:02d}"
    assert sorted(path.name for path in work.glob("exact-*.json")) == [
        f"exact-{shard:03d}.json" for shard in range(SHARDS)
    ]
