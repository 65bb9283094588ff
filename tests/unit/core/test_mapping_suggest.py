"""``vapi-chargeback mapping suggest``: rows the rules give, left to the CSV what it maps,
dated rows ending with a retiring cost center, every flag explained, bad input writes nothing.
(The round trip over real HTTP is in tests/integration/test_pipeline_mapping_rules.py.)"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from vapi_chargeback import cli
from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.mapping import AssistantMapping, parse_mapping
from vapi_chargeback.mapping_rules import ListedAssistant
from vapi_chargeback.mapping_suggest import suggest
from vapi_chargeback.names import StoredAssistants, assistants_sha256

from support.core_fixtures import MAPPING_HEADER, base_config, dump_yaml

LISTED = [
    ListedAssistant(id="asst-b", name="sales-outbound", metadata={"costCenter": "support"}),
    ListedAssistant(id="asst-a", name="sales-inbound"),
    ListedAssistant(id="asst-csv", name="sales-csv"),
    ListedAssistant(id="asst-z", name="pilot"),
]
RULES = [
    {"metadata": "costCenter", "team": "from-metadata"},
    {"name": "^sales-", "cost_center": "sales", "team": "by-name"},
]


def _document() -> dict[str, Any]:
    doc = base_config()
    doc["cost_centers"][1]["valid_to"] = "2026-10-20"
    doc["mapping_rules"] = RULES
    return doc


def test_rows_are_dated_and_sorted_and_the_csv_keeps_its_assistants(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    config = config_from(_document())
    rows = "asst-csv,team,sales,2026-01-01,2026-03-31\n"
    entries, problems = parse_mapping(
        (MAPPING_HEADER + rows).encode(), "teams.csv", set(config.cost_center_ids)
    )
    assert problems == []

    suggestion = suggest(config, AssistantMapping(entries), LISTED, date(2026, 10, 1))

    assert suggestion.rows == [
        ("asst-a", "by-name", "sales", "2026-10-01", ""),
        ("asst-b", "from-metadata", "support", "2026-10-01", "2026-10-20"),
    ]
    assert [item.id for item in suggestion.unmatched] == ["asst-z"]
    assert suggestion.mapped == 1
    later = suggest(config, AssistantMapping(entries), LISTED, date(2026, 11, 1))
    assert later.rows[1] == ("asst-b", "by-name", "sales", "2026-11-01", ""), (
        "after support ends, the next rule gives the row"
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "chargeback.yaml").write_text(dump_yaml(_document()), encoding="utf-8")
    (tmp_path / "assistant_teams.csv").write_text(MAPPING_HEADER, encoding="utf-8")
    stored = StoredAssistants(
        names={}, assistants=sorted(LISTED, key=lambda item: item.id), sha256=""
    )
    listing = stored.model_copy(update={"sha256": assistants_sha256(stored.assistants or [])})
    (tmp_path / "assistants.json").write_text(listing.model_dump_json(), encoding="utf-8")
    return tmp_path


def _suggest(folder: Path, *extra: str) -> int:
    argv = ["mapping", "suggest", "--config", str(folder / "chargeback.yaml")]
    return cli.main([*argv, "--out", str(folder / "rows.csv"), *extra])


def test_a_run_listing_gives_rows_and_the_unmatched(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = str(folder / "assistants.json")
    assert _suggest(folder, "--from-listing", listing, "--valid-from", "2026-10-01") == 0

    assert (folder / "rows.csv").read_text(encoding="utf-8") == (
        MAPPING_HEADER
        + "asst-a,by-name,sales,2026-10-01,\n"
        + "asst-b,from-metadata,support,2026-10-01,2026-10-20\n"
        + "asst-csv,by-name,sales,2026-10-01,\n"
    )
    out = capsys.readouterr().out
    assert "3 rows suggested from 2026-10-01" in out and "unmatched: asst-z pilot" in out


def test_a_tampered_listing_exits_1_and_writes_nothing(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = folder / "assistants.json"
    listing.write_text(listing.read_text().replace("pilot", "sales-pilot"), encoding="utf-8")

    assert _suggest(folder, "--from-listing", str(listing)) == cli.EXIT_ERROR
    assert "does not match its sha256" in capsys.readouterr().err
    assert not (folder / "rows.csv").exists()


def test_without_rules_or_key_it_is_a_usage_error(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(cli.API_KEY_ENV, raising=False)
    with pytest.raises(SystemExit) as exited:
        _suggest(folder)
    assert exited.value.code == cli.EXIT_USAGE
    assert cli.API_KEY_ENV in capsys.readouterr().err
    assert not (folder / "rows.csv").exists()


def test_help_explains_every_flag() -> None:
    parser = cli._parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    mapping = commands.choices["mapping"]
    verbs = next(a for a in mapping._actions if isinstance(a, argparse._SubParsersAction))
    suggest_parser = verbs.choices["suggest"]
    flags = [action for action in suggest_parser._actions if action.option_strings]
    assert {"--config", "--api-url", "--from-listing", "--valid-from", "--out", "--unmatched"} <= {
        flag for action in flags for flag in action.option_strings
    }
    assert all(action.help for action in flags)
    text = suggest_parser.format_help()
    assert cli.API_KEY_ENV in text and "source of" in text
