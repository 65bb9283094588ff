"""The DAG params ``restate`` and ``reason`` reach the plan step, which refuses a bad restatement.

Through the plan task's body (``steps.plan``) with Variables and the connection from the
environment, as a worker reads them: no database, nothing fetched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from vapi_chargeback.airflow import steps
from vapi_chargeback.airflow.settings import run_settings

from support.statement_checks import CONFIG, ROOT


@pytest.fixture
def airflow_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    output = tmp_path / "output"
    connection = {"conn_type": "vapi", "host": "http://127.0.0.1:9", "password": "k"}
    monkeypatch.setenv("AIRFLOW_CONN_VAPI_DEFAULT", json.dumps(connection))
    monkeypatch.setenv("AIRFLOW_VAR_VAPI_CHARGEBACK_CONFIG", str(CONFIG))
    monkeypatch.setenv("AIRFLOW_VAR_VAPI_CHARGEBACK_OUTPUT", output.as_uri())
    return output


def context(**params: Any) -> dict[str, Any]:
    return {"params": {"month": "2026-10", **params}, "run_id": "manual__2026-11-02"}


def test_the_params_become_run_settings(airflow_env: Path) -> None:
    settings = run_settings(context(restate=True, reason="invoice INV-7 corrected"), ROOT)

    assert (settings.restate, settings.reason) == (True, "invoice INV-7 corrected")
    plain = run_settings(context(), ROOT)
    assert (plain.restate, plain.reason) == (False, None)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"restate": True}, "needs a reason", id="restate-without-reason"),
        pytest.param({"restate": True, "reason": "  "}, "needs a reason", id="blank-reason"),
        pytest.param({"reason": "typo"}, "restate is false", id="reason-without-restate"),
        pytest.param(
            {"restate": True, "reason": "typo"}, "has not been published", id="nothing-booked"
        ),
    ],
)
def test_a_bad_restatement_fails_plan_for_good_and_writes_nothing(
    airflow_env: Path, params: dict[str, Any], expected: str
) -> None:
    with pytest.raises(AirflowFailException, match=expected) as failed:
        steps.plan(context(**params), ROOT)

    assert "not retried" in str(failed.value)
    assert not airflow_env.exists(), "nothing written, not even the run's work folder"
