"""The close settings of chargeback.yaml: defaults, the demo's choice, and each bad value
explained with file, line and field."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from vapi_chargeback.config import ConfigError, load_config
from vapi_chargeback.pipeline import invoices_path

from support.core_fixtures import DEMO_CONFIG, base_config


def test_a_config_without_close_settings_asks_for_manual_approval(
    write_config: Callable[[dict[str, Any]], Path],
) -> None:
    config = load_config(write_config(base_config()))

    assert config.approval == "manual"
    assert config.approval_timeout_days == 7
    assert config.deliver_drafts is False
    assert config.statement_prefix == "VAPI"
    assert config.invoice_tolerance_pct == Decimal(2)
    assert config.invoices == "invoices.csv"


def test_the_demo_config_approves_its_own_drafts_and_says_why() -> None:
    """Every end-to-end test runs ``airflow dags test`` with the demo config: a manual
    approval would park each run waiting for a person."""
    config = load_config(DEMO_CONFIG)
    text = DEMO_CONFIG.read_text(encoding="utf-8")

    assert config.approval == "auto"
    assert "approval: auto" in text and "a real org sets `manual`" in text


def test_settings_are_read_as_written(write_config: Callable[[dict[str, Any]], Path]) -> None:
    document = base_config() | {
        "approval": "auto",
        "approval_timeout_days": 3,
        "deliver_drafts": True,
        "statement_prefix": "ACME-VAPI",
        "invoice_tolerance_pct": Decimal("0.5"),
        "invoices": "finance/vapi-invoices.csv",
    }
    path = write_config(document)
    config = load_config(path)

    assert (config.approval, config.approval_timeout_days, config.deliver_drafts) == (
        "auto",
        3,
        True,
    )
    assert config.statement_prefix == "ACME-VAPI"
    assert config.invoice_tolerance_pct == Decimal("0.5")
    assert invoices_path(config, path) == path.parent / "finance" / "vapi-invoices.csv"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("approval", "sometimes", r"approval: 'sometimes' is not allowed: 'manual' or 'auto'"),
        ("approval_timeout_days", 0, r"approval_timeout_days: .*greater than or equal to 1"),
        ("deliver_drafts", "yes please", r"deliver_drafts: "),
        (
            "statement_prefix",
            "VAPI 2026",
            r"statement_prefix: 'VAPI 2026' cannot start a statement id",
        ),
        ("statement_prefix", "", r"statement_prefix: '' cannot start a statement id"),
        ("invoice_tolerance_pct", Decimal(101), r"invoice_tolerance_pct: 101 is not a percentage"),
        ("invoice_tolerance_pct", -1, r"invoice_tolerance_pct: "),
        ("invoices", "", r"invoices: "),
    ],
    ids=lambda value: str(value),
)
def test_bad_close_settings_name_file_line_and_field(
    write_config: Callable[[dict[str, Any]], Path], field: str, value: Any, expected: str
) -> None:
    path = write_config(base_config() | {field: value})

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert re.search(rf"{re.escape(str(path))}:[1-9]\d*: {expected}", str(caught.value)), str(
        caught.value
    )
