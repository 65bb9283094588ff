"""Fixtures of the money-core tests: a small valid config and mapping on disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vapi_chargeback.config import ChargebackConfig, load_config
from vapi_chargeback.mapping import AssistantMapping, load_mapping

from support.core_fixtures import MAPPING_HEADER, dump_yaml


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    def write(document: dict[str, Any]) -> Path:
        path = tmp_path / "chargeback.yaml"
        path.write_text(dump_yaml(document), encoding="utf-8")
        return path

    return write


@pytest.fixture
def config_from(
    write_config: Callable[[dict[str, Any]], Path],
) -> Callable[[dict[str, Any]], ChargebackConfig]:
    return lambda document: load_config(write_config(document))


@pytest.fixture
def mapping_from(tmp_path: Path) -> Callable[[str, ChargebackConfig], AssistantMapping]:
    def load(rows: str, config: ChargebackConfig) -> AssistantMapping:
        path = tmp_path / "assistant_teams.csv"
        path.write_text(MAPPING_HEADER + rows, encoding="utf-8")
        return load_mapping(path, config)

    return load
