"""The real DAG with ``vapi_chargeback_output = s3://aws_s3_test@bucket/statements``.

``airflow dags test`` runs every task against the emulator over HTTP and a local S3
(moto's server mode) on loopback, reached only through the Airflow connection
``aws_s3_test`` — its endpoint and keys come from ``AIRFLOW_CONN_AWS_S3_TEST``, as in a
deployment. The month is then read back from S3 with our own boto3 client and must pass
exactly the checks the file:// end-to-end test applies (``statement_checks``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from vapi_chargeback import localrun
from vapi_chargeback.storage import read_published

from support.s3_server import CONN_ENV, LocalS3, local_s3
from support.statement_checks import CONFIG, ROOT, assert_month_statements

MONTH = "2026-10"
CALLS = 2000
PREFIX = "statements"

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


@dataclass(frozen=True)
class Api:
    base_url: str
    api_key: str


@dataclass(frozen=True)
class S3Location:
    """The month as a downstream reader without Airflow sees it: s3fs with its own keys."""

    fs: object
    path: str
    protocol: str = "s3"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One month of generated calls — enough for every allocation rule, small enough to be quick."""
    work = tmp_path_factory.mktemp("emulator")
    calls = work / "calls.parquet"
    localrun.generate_calls(calls, month=MONTH, calls_per_month=CALLS)
    api_key = secrets.token_urlsafe(16)
    with localrun.serve_emulator([calls], api_key, log=work / "access.log") as base_url:
        yield Api(base_url, api_key)


@pytest.fixture(scope="module")
def s3() -> Iterator[LocalS3]:
    with local_s3() as server:
        yield server


@pytest.fixture(scope="module")
def published(api: Api, s3: LocalS3, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the DAG for October into S3; download the month folder for the checks."""
    env = localrun.airflow_env(
        project_dir=ROOT,
        airflow_home=tmp_path_factory.mktemp("airflow-home"),
        api_base_url=api.base_url,
        api_key=api.api_key,
        output_url=s3.url(PREFIX),
        config_path=CONFIG,
    )
    env[CONN_ENV] = s3.connection_json()
    localrun.migrate(env)
    localrun.dags_test(date(2026, 11, 1), env, log_name=f"dags-test-{MONTH}.log")

    folder = tmp_path_factory.mktemp("downloaded") / MONTH
    for relative, data in s3.objects(f"{PREFIX}/{MONTH}").items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
    return folder


def test_s3_statements_pass_the_file_output_checks(api: Api, published: Path) -> None:
    assert_month_statements(published, MONTH, api)


def test_every_object_matches_the_manifest(s3: LocalS3, published: Path) -> None:
    """What a reader of the bucket trusts: the manifest and every file it lists, by sha256."""
    manifest = read_published(S3Location(s3.filesystem(), f"{s3.bucket}/{PREFIX}"), MONTH)

    assert manifest is not None
    assert manifest == json.loads((published / "manifest.json").read_text())
    for relative, entry in manifest["files"].items():
        assert hashlib.sha256((published / relative).read_bytes()).hexdigest() == entry["sha256"]


def test_every_task_worked_through_the_connection(s3: LocalS3, published: Path) -> None:
    """The plan and raw responses went to S3 too: later tasks reopened the work URL with its conn_id."""
    runs = s3.objects(f"{PREFIX}/_runs/{MONTH}")

    assert {relative.split("/", 1)[1] for relative in runs} >= {
        "plan.json",
        "raw/batch-000.json",
        "statement.json",
        "statement-reconciled.json",
    }
