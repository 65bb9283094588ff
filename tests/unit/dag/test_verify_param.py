"""The DAG's ``verify`` task (``steps.verify``): the param ``verify_calls`` decides over the
config's ``verification.enabled``, and a run that does not verify never opens a connection."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vapi_chargeback.airflow import steps
from vapi_chargeback.config import load_config
from vapi_chargeback.pipeline import RunInfo

ROOT = Path(__file__).resolve().parents[3]
CONFIG_FILE = ROOT / "include" / "config" / "chargeback.yaml"
CONFIG = load_config(CONFIG_FILE)


def test_the_dag_param_decides_over_the_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    enabled = tmp_path / "chargeback.yaml"
    enabled.write_text(CONFIG_FILE.read_text() + "\nverification:\n  enabled: true\n")
    runs: list[Any] = []

    class Hook:
        @contextmanager
        def get_conn(self) -> Any:
            yield "client"

    monkeypatch.setattr("vapi_chargeback.airflow.hook.VapiAnalyticsHook", Hook)
    monkeypatch.setattr(
        "vapi_chargeback.verify.step.verify_run",
        lambda run, allocated, reconciled, client, open_path: (
            runs.append(client) or {"verified": 1}
        ),
    )

    def info(config: Path) -> dict[str, Any]:
        now = datetime(2026, 11, 2, tzinfo=UTC)
        return RunInfo(
            month="2026-10",
            timezone=CONFIG.timezone,
            period_start=now,
            period_end=now,
            run_id="r",
            config_path=str(config),
            mapping_path="m",
            config_sha256="x",
            mapping_sha256="y",
            output_url="file:///o",
            work_url="file:///w",
            batch_count=1,
            query_count=1,
        ).model_dump(mode="json")

    reconciled = {"statement": "statement-reconciled.json", "sha256": "z"}
    cases = [
        (CONFIG_FILE, None),
        (CONFIG_FILE, False),
        (enabled, False),
        (enabled, None),
        (CONFIG_FILE, True),
    ]
    answers = [
        steps.verify({"params": {"verify_calls": param}}, info(config), {}, reconciled)
        for config, param in cases
    ]
    assert answers == [reconciled, reconciled, reconciled, {"verified": 1}, {"verified": 1}]
    assert runs == ["client", "client"]
