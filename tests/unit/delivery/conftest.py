"""Fixtures for the delivery tests: an output folder with two published months."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.delivery_samples import PERIOD, PREVIOUS, ScriptedSender, publish_month


@pytest.fixture
def output(tmp_path: Path) -> Path:
    """September (scale 1) and October (scale 2) published under ``tmp_path/output``."""
    root = tmp_path / "output"
    publish_month(root, PREVIOUS, scale=1)
    publish_month(root, PERIOD, scale=2)
    return root


@pytest.fixture
def sender() -> ScriptedSender:
    return ScriptedSender()
