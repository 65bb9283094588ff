"""Rules apply as of the run: to the assistants its fetch listed and stored (with their
sha256) in the work folder, never to a fresh listing.

A retried allocate, or a verify of the run, reads the same ``assistants.json``: what the
API answers later (metadata changed, an assistant deleted) does not move the month. A
listing that failed or is missing matches no rule; a tampered one stops the run.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from upath import UPath

from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.mapping_rules import MappingRule, RuleMatch
from vapi_chargeback.names import ASSISTANTS_FILE, fetch_assistants, run_rules

RULES = [
    MappingRule(metadata="costCenter", team_key="team"),
    MappingRule(name="^sales-", cost_center="sales", team="by-name"),
]
ENDS: dict[str, date | None] = {"sales": None, "support": None}
DAY = date(2026, 10, 5)


def listing(*assistants: dict[str, object]) -> httpx.MockTransport:
    created = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    body = [{"createdAt": created, **item} for item in assistants]
    return httpx.MockTransport(lambda request: httpx.Response(200, json=body))


def fetch(work: UPath, transport: httpx.MockTransport) -> None:
    with VapiAnalyticsClient(
        "http://vapi.test", "key", transport=transport, sleep=lambda s: None, max_retries=1
    ) as client:
        fetch_assistants(client, work)


def test_rules_read_the_listing_the_run_stored_not_a_later_one(tmp_path: Path) -> None:
    work = UPath(tmp_path)
    fetch(
        work,
        listing(
            {"id": "asst-1", "name": "bot", "metadata": {"costCenter": "support", "team": "t"}},
            {"id": "asst-2", "name": "sales-desk"},
        ),
    )
    fetch(work, listing({"id": "asst-1", "name": "bot", "metadata": {"costCenter": "sales"}}))

    book = run_rules(work, RULES)

    assert book.match("asst-1", ENDS, DAY) == RuleMatch("support", "t", "metadata")
    assert book.match("asst-2", ENDS, DAY) == RuleMatch("sales", "by-name", "name")
    assert book.match("asst-9", ENDS, DAY) is None, "an assistant not listed matches nothing"


def test_a_failed_or_missing_listing_matches_no_rule(tmp_path: Path) -> None:
    failed = UPath(tmp_path / "failed")
    failed.mkdir()
    fetch(failed, httpx.MockTransport(lambda request: httpx.Response(503, text="down")))

    assert run_rules(failed, RULES).match("asst-1", ENDS, DAY) is None
    assert run_rules(UPath(tmp_path / "never-listed"), RULES).assistants == {}


def test_a_tampered_listing_stops_the_run_naming_the_file(tmp_path: Path) -> None:
    work = UPath(tmp_path)
    fetch(work, listing({"id": "asst-1", "name": "bot", "metadata": {"costCenter": "support"}}))
    stored = work / ASSISTANTS_FILE
    stored.write_text(stored.read_text().replace('"support"', '"sales"'))

    with pytest.raises(ValueError, match=r"assistants\.json: the assistants snapshot does not"):
        run_rules(work, RULES)
