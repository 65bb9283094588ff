"""``bench/load.py`` runs end to end: concurrent clients, 0 errors, percentiles in its JSON.

The real numbers (50 clients × 20 requests on 1.5M calls) come from
``python bench/load.py``; this runs the same script with small numbers on a small file,
so a change that breaks it, or the emulator under concurrency, is caught by the suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_load_script_reports_zero_errors_and_percentiles(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "load.py"),
            "--clients",
            "10",
            "--requests",
            "4",
            "--calls",
            "24000",
            "--data",
            str(tmp_path / "calls.parquet"),
            "--deadline",
            "120",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(out.read_text())
    assert report["errors"] == {"count": 0, "first": []}
    assert report["requests"] == {"planned": 40, "sent": 40}
    assert (
        0
        < report["latency_ms"]["p50"]
        <= report["latency_ms"]["p95"]
        <= report["latency_ms"]["max"]
    )
    served = report["server_stats"]["requests"]["POST /analytics"]
    assert served >= 40 and report["server_stats"]["responses"] == {"200": served + 1}
    assert "p95" in completed.stdout
