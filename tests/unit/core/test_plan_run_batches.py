"""plan_run packs batches with the limit it is given (the connection's), not a constant."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from vapi_chargeback.pipeline import RunSettings, plan_run

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "include" / "config" / "chargeback.yaml"


@pytest.mark.parametrize("limit", [1, 2, 4, 20])
def test_batch_count_follows_the_limit(tmp_path: Path, limit: int) -> None:
    run = plan_run(
        RunSettings(
            config_path=str(CONFIG),
            default_output_url=tmp_path.as_uri(),
            month="2026-10",
            run_id=f"limit-{limit}",
            max_queries_per_request=limit,
        )
    )
    assert run.batch_count == math.ceil(run.query_count / limit)
