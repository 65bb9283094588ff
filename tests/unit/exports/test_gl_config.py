"""The gl: block: accounts resolve per cost center, and every gap is named by file and line."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vapi_chargeback.config import ConfigError, load_config
from vapi_chargeback.exports.accounts import journal_accounts
from vapi_chargeback.statement import JournalAccounts

from support.core_fixtures import DEMO_CONFIG, base_config, dump_yaml

GL = {"expense_account": "6400", "credit_account": "2100", "suspense_account": "1999"}


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    def write(document: dict[str, Any]) -> Path:
        path = tmp_path / "chargeback.yaml"
        path.write_text(dump_yaml(document), encoding="utf-8")
        return path

    return write


def resolved(path: Path) -> JournalAccounts | None:
    config = load_config(path)
    return journal_accounts(config.gl, {c.id: c.gl_account for c in config.cost_centers})


def test_the_demo_config_books_each_cost_center() -> None:
    accounts = resolved(DEMO_CONFIG)

    assert accounts is not None
    assert accounts.expense_accounts == {
        "sales": "6410",
        "support": "6400",
        "marketing": "6400",
        "operations": "6400",
    }
    assert (accounts.credit_account, accounts.suspense_account) == ("2100", "1999")
    assert (accounts.journal_prefix, accounts.pool_accounts) == (
        "VAPI-JE",
        {"platform-fee": "6450"},
    )


def test_without_a_gl_block_there_is_no_journal(
    write_config: Callable[[dict[str, Any]], Path],
) -> None:
    assert resolved(write_config(base_config())) is None


def test_own_accounts_need_no_default(write_config: Callable[[dict[str, Any]], Path]) -> None:
    doc = base_config()
    doc["gl"] = {"credit_account": "2100", "suspense_account": "1999"}
    doc["cost_centers"][0]["gl_account"] = "6410"
    doc["cost_centers"][1]["gl_account"] = "EXP.AI/02"

    accounts = resolved(write_config(doc))

    assert accounts is not None
    assert accounts.expense_accounts == {"sales": "6410", "support": "EXP.AI/02"}


def _without_default(doc: dict[str, Any]) -> None:
    doc["gl"] = {"credit_account": "2100", "suspense_account": "1999"}
    doc["cost_centers"][0]["gl_account"] = "6410"


def _account_without_gl(doc: dict[str, Any]) -> None:
    doc["cost_centers"][1]["gl_account"] = "6410"


def _number(doc: dict[str, Any]) -> None:
    doc["gl"] = {**GL, "credit_account": 2100}


def _unknown_pool(doc: dict[str, Any]) -> None:
    doc["gl"] = {**GL, "pool_accounts": {"platform": "6450"}}


def _missing_credit(doc: dict[str, Any]) -> None:
    doc["gl"] = {"expense_account": "6400", "suspense_account": "1999"}


def _bad_code(doc: dict[str, Any]) -> None:
    doc["gl"] = {**GL, "suspense_account": "19 99"}


BAD = [
    pytest.param(
        _without_default,
        r"cost_centers\[1\]\.gl_account: cost center 'support' has no gl_account and"
        r" gl\.expense_account \(the default\) is not set",
        id="cost-center-without-account-no-default",
    ),
    pytest.param(
        _account_without_gl,
        r"cost_centers\[1\]\.gl_account: gl_account needs a gl: block",
        id="gl-account-without-gl-block",
    ),
    pytest.param(
        _number, r"gl\.credit_account: 2100 is a number; quote account codes", id="unquoted"
    ),
    pytest.param(
        _unknown_pool,
        r"gl\.pool_accounts\.platform: 'platform' is not a shared pool",
        id="unknown-pool",
    ),
    pytest.param(_missing_credit, r"gl\.credit_account: required field missing", id="no-credit"),
    pytest.param(_bad_code, r"gl\.suspense_account: .*pattern", id="space-in-code"),
]


@pytest.mark.parametrize(("edit", "expected"), BAD)
def test_bad_gl_config_names_file_line_and_field(
    edit: Callable[[dict[str, Any]], None],
    expected: str,
    write_config: Callable[[dict[str, Any]], Path],
) -> None:
    doc = base_config()
    edit(doc)
    path = write_config(doc)

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert re.search(rf"{re.escape(str(path))}:[1-9]\d*: {expected}", str(caught.value)), str(
        caught.value
    )
