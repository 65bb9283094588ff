"""``make demo`` prints how many direct lines each rule charged, mapping rules included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vapi_chargeback import demo


def test_the_demo_prints_the_lines_each_rule_charged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    counts = {"mapping": 22, "rule:metadata": 1, "variable": 77}
    (tmp_path / "manifest.json").write_text(json.dumps({"totals": {"lines_by_charged_by": counts}}))

    demo._charged_by(tmp_path)

    lines = capsys.readouterr().out.splitlines()
    assert lines[1].strip().startswith("Direct lines charged by")
    assert [line.split()[-1] for line in lines[2:]] == ["22", "77", "1", "0"]
    assert "a metadata rule" in lines[4] and "a name rule" in lines[5]


def test_a_manifest_without_the_counts_prints_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"totals": {}}))

    demo._charged_by(tmp_path)

    assert capsys.readouterr().out == ""
