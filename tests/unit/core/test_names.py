"""Assistant names: mapping column > ``GET /assistant`` > earlier published months > the id,
one snapshot per run, kept in the work folder and hashed into the manifest."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from upath import UPath

from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.mapping import AssistantMapping, parse_mapping
from vapi_chargeback.names import (
    ASSISTANTS_FILE,
    NAMES_FILE,
    ListedAssistant,
    StoredAssistants,
    assistants_sha256,
    fetch_assistants,
    forget_names,
    named_lines,
    read_assistants,
    read_snapshot,
    resolve,
    run_names,
    snapshot_sha256,
)
from vapi_chargeback.statements.manifest import names_block
from vapi_chargeback.storage import publish_statement

from support.statement_samples import BERLIN, sample_statement

CENTERS = {"sales", "support"}
HEADER = "assistant_id,team,cost_center_id,valid_from,valid_to,assistant_name\n"
LAST_DAY = date(2026, 10, 31)


def mapping(rows: str, header: str = HEADER) -> AssistantMapping:
    entries, problems = parse_mapping((header + rows).encode(), "teams.csv", CENTERS)
    assert problems == []
    return AssistantMapping(entries)


def api(**names: str) -> StoredAssistants:
    return StoredAssistants(names={key.replace("_", "-"): value for key, value in names.items()})


def publish_september(output: Path, names: dict[str, str]) -> None:
    """September published with ``names`` on its lines (asst-1, asst-2, asst-9 have calls)."""
    october = sample_statement()
    september = replace(
        october,
        period="2026-09",
        period_start=datetime(2026, 9, 1, tzinfo=BERLIN),
        period_end=datetime(2026, 10, 1, tzinfo=BERLIN),
        lines=[
            replace(line, assistant_name=names.get(line.assistant_id, "")) for line in october.lines
        ],
    )
    publish_statement(september, output)


# The mapping's column.


def test_the_mapping_may_carry_a_trimmed_name_as_of_the_statements_last_day() -> None:
    named = mapping(
        "ASST-1,emea,sales,2026-01-01,2026-10-14, Sales Desk \n"
        "asst-1,emea,support,2026-10-15,,Support Desk\n"
        "asst-2,emea,sales,,,\n"
        "asst-3,emea,sales,2026-12-01,,Future Bot\n"
    )
    assert named.names(LAST_DAY) == {"asst-1": "Support Desk", "asst-3": "Future Bot"}
    assert named.names(date(2026, 10, 1)) == {"asst-1": "Sales Desk", "asst-3": "Future Bot"}
    without = mapping("asst-1,emea,sales,,\n", header=HEADER.replace(",assistant_name", ""))
    assert without.names(LAST_DAY) == {}


@pytest.mark.parametrize(
    ("header", "row", "problem"),
    [
        pytest.param(HEADER.replace(",assistant_name", ""), "a1,t,sales,,,Name\n", "6 fields; expected 5", id="name-without-its-header"),
        pytest.param(HEADER, "a1,t,sales,,,Name,more\n", "7 fields; expected 6", id="seven-fields"),
        pytest.param(HEADER, "a1,t,sales,,,Bad\x07Name\n", "assistant_name 'Bad\\x07Name' contains a control character", id="control-character"),
        pytest.param(HEADER, f"a1,t,sales,,,{'n' * 201}\n", "assistant_name is 201 characters, over 200", id="too-long"),
        pytest.param("assistant_id,team,cost_center_id,valid_from,valid_to,name\n", "", "header is", id="wrong-column-name"),
    ],
)  # fmt: skip
def test_a_bad_name_column_names_file_line_and_field(header: str, row: str, problem: str) -> None:
    _, problems = parse_mapping((header + row).encode(), "teams.csv", CENTERS)
    assert len(problems) == 1 and problem in problems[0] and problems[0].startswith("teams.csv:")


# Precedence.


def test_precedence_mapping_then_api_then_earlier_months_then_the_id() -> None:
    snapshot = resolve(
        ["asst-1", "asst-2", "asst-7", "asst-8", "ASST-9"],
        mapping={"asst-1": "Sales Desk (finance)", "asst-8": "Renamed by finance"},
        api=api(asst_1="Sales Bot", asst_2="Support Line"),
        earlier=[("2026-09", {"asst-7": "Pilot Seven", "asst-8": "Old"}), ("2026-08", {"asst-7": "Older"})],
    )  # fmt: skip
    assert snapshot.names == {
        "asst-1": "Sales Desk (finance)",
        "asst-2": "Support Line",
        "asst-7": "Pilot Seven",
        "asst-8": "Renamed by finance",
        "ASST-9": "ASST-9",
    }
    assert snapshot.sources == {
        "asst-1": "mapping",
        "asst-2": "api",
        "asst-7": "earlier:2026-09",
        "asst-8": "mapping",
        "ASST-9": "id",
    }
    assert snapshot.api_error is None
    assert snapshot.sha256 == snapshot_sha256(snapshot.names, snapshot.sources, None)
    assert names_block(snapshot) == {
        "sha256": snapshot.sha256,
        "by_source": {"api": 1, "earlier": 1, "id": 1, "mapping": 2},
        "api_error": None,
    }


def test_a_deleted_assistant_takes_the_mapping_name_else_an_earlier_months_else_its_id(
    tmp_path: Path,
) -> None:
    """asst-2 and asst-9 are in the month's calls but not in GET /assistant (deleted)."""
    output, work = UPath(tmp_path / "out"), UPath(tmp_path / "work")
    work.mkdir()
    publish_september(
        tmp_path / "out", {"asst-1": "Sales Bot", "asst-2": "Support (Sept)", "asst-9": "asst-9"}
    )
    (work / ASSISTANTS_FILE).write_bytes(api(asst_1="Sales Bot v2").model_dump_json().encode())
    lines = sample_statement().lines

    by_earlier = run_names(work, output, "2026-10", LAST_DAY, lines, mapping(""))
    assert by_earlier.names == {
        "asst-1": "Sales Bot v2",
        "asst-2": "Support (Sept)",
        "asst-9": "asst-9",
    }
    assert by_earlier.sources == {"asst-1": "api", "asst-2": "earlier:2026-09", "asst-9": "id"}

    (work / NAMES_FILE).unlink()
    by_mapping = run_names(
        work, output, "2026-10", LAST_DAY, lines, mapping("asst-2,t,support,,,Support Desk\n")
    )
    assert by_mapping.names["asst-2"] == "Support Desk"
    assert by_mapping.sources["asst-2"] == "mapping"

    named = named_lines(lines, by_mapping)
    assert [line.assistant_name for line in named] == [
        "Sales Bot v2",
        "",
        "Support Desk",
        "",
        "",
        "asst-9",
    ]
    assert [replace(line, assistant_name="") for line in named] == lines


def test_a_retried_allocate_keeps_the_snapshot_it_stored(tmp_path: Path) -> None:
    output, work = UPath(tmp_path / "out"), UPath(tmp_path / "work")
    work.mkdir()
    lines = sample_statement().lines
    first = run_names(work, output, "2026-10", LAST_DAY, lines, mapping(""))
    assert first.sources["asst-2"] == "id"

    publish_september(tmp_path / "out", {"asst-2": "Published meanwhile"})
    again = run_names(work, output, "2026-10", LAST_DAY, lines, mapping(""))

    assert again == first
    assert read_snapshot((work / NAMES_FILE).read_bytes(), "names.json") == first
    stored = json.loads((work / NAMES_FILE).read_bytes())
    stored["names"]["asst-2"] = "edited"
    with pytest.raises(ValueError, match="does not match its sha256"):
        read_snapshot(json.dumps(stored).encode(), "names.json")


def test_earlier_months_are_not_read_when_nothing_is_missing(tmp_path: Path) -> None:
    output, work = UPath(tmp_path / "out"), UPath(tmp_path / "work")
    work.mkdir()
    (tmp_path / "out" / "2026-09").mkdir(parents=True)
    (tmp_path / "out" / "2026-09" / "manifest.json").write_text("damaged")
    (work / ASSISTANTS_FILE).write_bytes(
        api(asst_1="One", asst_2="Two", asst_9="Nine").model_dump_json().encode()
    )
    snapshot = run_names(work, output, "2026-10", LAST_DAY, sample_statement().lines, mapping(""))
    assert set(snapshot.sources.values()) == {"api"}


# The listing in the fetch stage.


def client_for(answer: httpx.MockTransport) -> VapiAnalyticsClient:
    return VapiAnalyticsClient(
        "http://vapi.test", "key", transport=answer, sleep=lambda s: None, max_retries=1
    )


def test_the_listing_is_stored_once_per_run_with_printable_names(tmp_path: Path) -> None:
    work = UPath(tmp_path)
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        created = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
        return httpx.Response(
            200,
            json=[
                {
                    "id": "ASST-1",
                    "name": "  Sales\nBot\t1 ",
                    "createdAt": created,
                    "metadata": {"costCenter": "sales", "tier": 2},
                },
                {"id": "asst-2", "name": None, "createdAt": created, "metadata": None},
                {"id": "asst-3", "createdAt": created},
            ],
        )

    with client_for(httpx.MockTransport(answer)) as client:
        stored = fetch_assistants(client, work)
        again = fetch_assistants(client, work)
    listed = [
        ListedAssistant(
            id="asst-1", name="Sales Bot 1", metadata={"costCenter": "sales", "tier": 2}
        ),
        ListedAssistant(id="asst-2", name=""),
        ListedAssistant(id="asst-3", name=""),
    ]
    assert (
        stored
        == again
        == StoredAssistants(
            names={"asst-1": "Sales Bot 1"},
            requests=1,
            assistants=listed,
            sha256=assistants_sha256(listed),
        )
    )
    assert len(sent) == 1, "a retried fetch keeps the listing of the first"

    stored_file = work / "assistants.json"
    tampered = stored_file.read_text().replace('"sales"', '"ops"')
    stored_file.write_text(tampered)
    with pytest.raises(
        ValueError, match=r"assistants\.json: the assistants snapshot does not match"
    ):
        read_assistants(stored_file.read_bytes(), str(stored_file))


def test_a_failed_listing_keeps_the_month_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    work = UPath(tmp_path / "work")
    work.mkdir()
    failing = httpx.MockTransport(lambda request: httpx.Response(503, text="down"))
    with client_for(failing) as client:
        stored = fetch_assistants(client, work)
    assert stored.names is None and stored.error is not None and "HTTP 503" in stored.error
    assert any(
        "GET /assistant failed" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )

    snapshot = run_names(
        work, UPath(tmp_path / "out"), "2026-10", LAST_DAY, sample_statement().lines,
        mapping("asst-1,emea,sales,,,Sales Desk\n"),
    )  # fmt: skip
    assert snapshot.sources == {"asst-1": "mapping", "asst-2": "id", "asst-9": "id"}
    assert snapshot.api_error == stored.error
    assert names_block(snapshot)["api_error"] == stored.error

    (work / NAMES_FILE).unlink()
    listed = httpx.MockTransport(lambda request: httpx.Response(200, json=[]))
    with client_for(listed) as client:
        assert fetch_assistants(client, work) == StoredAssistants(
            names={}, requests=1, assistants=[], sha256=assistants_sha256([])
        )


def test_planning_the_run_again_names_it_afresh(tmp_path: Path) -> None:
    """A cleared Airflow run keeps its id and work folder: its new plan drops the old
    listing and snapshot, so a name finance added to the mapping meanwhile shows."""
    output, work = UPath(tmp_path / "out"), UPath(tmp_path / "work")
    work.mkdir()
    (work / ASSISTANTS_FILE).write_bytes(api(asst_2="Listed").model_dump_json().encode())
    lines = sample_statement().lines
    assert (
        run_names(work, output, "2026-10", LAST_DAY, lines, mapping("")).names["asst-2"] == "Listed"
    )

    forget_names(work)

    assert not (work / ASSISTANTS_FILE).exists() and not (work / NAMES_FILE).exists()
    renamed = mapping("asst-2,t,support,,,Support Desk\n")
    assert (
        run_names(work, output, "2026-10", LAST_DAY, lines, renamed).names["asst-2"]
        == "Support Desk"
    )
