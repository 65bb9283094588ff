"""The one emulator launcher takes any key ``secrets.token_urlsafe`` can make."""

from __future__ import annotations

from pathlib import Path

import httpx

from vapi_chargeback import localrun


def test_a_key_starting_with_a_dash_is_a_key_not_an_option(tmp_path: Path) -> None:
    calls = localrun.generate_calls(
        tmp_path / "calls.parquet", month="2026-10", months=1, calls_per_month=50
    )
    key = "-starts-like-an-option"
    with localrun.serve_emulator([calls], key, log=tmp_path / "emulator.log") as base_url:
        body = {
            "queries": [
                {
                    "table": "call",
                    "name": "n",
                    "operations": [{"operation": "count", "column": "id"}],
                }
            ]
        }
        refused = httpx.post(
            f"{base_url}/analytics", json=body, headers={"Authorization": "Bearer x"}
        )
        accepted = httpx.post(
            f"{base_url}/analytics", json=body, headers={"Authorization": f"Bearer {key}"}
        )
    assert refused.status_code == 401
    assert accepted.status_code in (200, 201), accepted.text
