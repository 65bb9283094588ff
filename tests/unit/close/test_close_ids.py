"""Statement numbers: the DESIGN §3 format, stable per (prefix, month, cost center, version)."""

from __future__ import annotations

import pytest

from vapi_chargeback.close.ids import (
    DEFAULT_PREFIX,
    StatementPrefixError,
    statement_id,
    statement_ids,
    validate_prefix,
)
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.statement import UNALLOCATED


def test_ids_follow_the_design_format() -> None:
    assert statement_id("VAPI", "2026-10", "sales", 1) == "VAPI-2026-10-sales-v1"
    assert statement_id("VAPI", "2026-10", None, 2) == "VAPI-2026-10-ORG-v2"
    assert statement_id("ACME-VAPI", "2026-01", "ops", 12) == "ACME-VAPI-2026-01-ops-v12"
    assert DEFAULT_PREFIX == "VAPI"


def test_month_ids_are_stable_and_change_only_with_the_version() -> None:
    first = statement_ids("VAPI", "2026-10", ["sales", "support"], 1)
    again = statement_ids("VAPI", "2026-10", ["sales", "support"], 1)
    restated = statement_ids("VAPI", "2026-10", ["sales", "support"], 2)

    assert first == again
    assert first.org == "VAPI-2026-10-ORG-v1"
    assert first.by_cost_center == {
        "sales": "VAPI-2026-10-sales-v1",
        "support": "VAPI-2026-10-support-v1",
    }
    assert restated.org == "VAPI-2026-10-ORG-v2"
    assert restated.by_cost_center["sales"] == "VAPI-2026-10-sales-v2"
    assert first.manifest_block() == {"org": first.org, "cost_centers": first.by_cost_center}


def test_lines_without_a_statement_of_their_own_cite_the_org_statement() -> None:
    ids = statement_ids("VAPI", "2026-10", ["sales"], 1)

    assert ids.for_cost_center("sales") == "VAPI-2026-10-sales-v1"
    assert ids.for_cost_center(UNALLOCATED) == "VAPI-2026-10-ORG-v1"
    assert ids.for_cost_center("added-later") == "VAPI-2026-10-ORG-v1"


@pytest.mark.parametrize("prefix", ["VAPI", "ACME-VAPI", "Acme_2", "A", "X" * 16])
def test_good_prefixes(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param("", id="empty"),
        pytest.param("VAPI 1", id="space"),
        pytest.param("-VAPI", id="leading-dash"),
        pytest.param("VAPI-", id="trailing-dash"),
        pytest.param("A--B", id="double-dash"),
        pytest.param("A/B", id="slash"),
        pytest.param("VAPI.", id="dot"),
        pytest.param("1VAPI", id="leading-digit"),
        pytest.param("X" * 17, id="too-long"),
    ],
)
def test_bad_prefixes_are_refused_with_the_rule(prefix: str) -> None:
    with pytest.raises(StatementPrefixError) as caught:
        validate_prefix(prefix)

    assert isinstance(caught.value, PermanentError)
    assert repr(prefix) in str(caught.value)
    assert "letters and digits" in str(caught.value)


@pytest.mark.parametrize(
    ("period", "center", "version", "message"),
    [
        pytest.param("2026-13", "sales", 1, "YYYY-MM", id="bad-month"),
        pytest.param("2026-10", "sales", 0, "version", id="version-zero"),
        pytest.param("2026-10", "", 1, "empty", id="empty-cost-center"),
    ],
)
def test_bad_parts_are_refused(period: str, center: str, version: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        statement_id("VAPI", period, center, version)


def test_a_cost_center_named_org_is_refused() -> None:
    with pytest.raises(ValueError, match="reserved"):
        statement_ids("VAPI", "2026-10", ["ORG"], 1)
