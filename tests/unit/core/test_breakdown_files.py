"""Breakdowns kept beside the statement, one file per cost center, read one cost center at a
time: the same tables as inline, their files held to their sha256, and statement JSON of
the previous version (breakdowns inline) still read as it was written. Also the integer
arithmetic that replaced ``Fraction``s in making tables, against the ``Fraction``s."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from upath import UPath

from vapi_chargeback import statement_json
from vapi_chargeback.breakdown_files import (
    BreakdownsFileError,
    StoredBreakdowns,
    dumps_tables,
    loads_tables,
    store_breakdowns,
)
from vapi_chargeback.breakdowns import GroupKey, _ratio
from vapi_chargeback.exact_sums import ExactSums
from vapi_chargeback.money import round_money
from vapi_chargeback.shard_groups import MergedGroups, ShardGroupsError, dumps_groups
from vapi_chargeback.statement import (
    Breakdown,
    ChargebackLine,
    CostCenterInfo,
    Provenance,
    Reconciliation,
    Statement,
)
from vapi_chargeback.statement_json import StatementJsonError
from vapi_chargeback.statements.keyfigures import RATE_QUANTUM
from vapi_chargeback.workfolder import load_statement

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
INLINE = FIXTURES / "statement-inline-295c508.json"
"""``sample()`` with a second, dated table, as ``statement_json.dumps`` of 295c508 wrote it
(breakdowns inline, before they were kept apart)."""

BERLIN = ZoneInfo("Europe/Berlin")


def sample() -> Statement:
    """``test_statement_json.sample()``: what the fixture was written from."""
    line = ChargebackLine(
        cost_center_id="sales",
        cost_center_name="Sales",
        team="inbound-sales",
        assistant_id="a1",
        allocation="direct",
        calls=3,
        minutes=Decimal("12.50"),
        cost_usd=Decimal("1.10"),
        components_usd={"stt": Decimal("0.30"), "llm": Decimal("0.40")},
    )
    by_reason = Breakdown(
        "by-reason",
        "Minutes by reason",
        ["reason", "minutes"],
        [["12.50", Decimal("12.50")], [None, 3]],
    )
    return Statement(
        period="2026-10",
        timezone="Europe/Berlin",
        period_start=datetime(2026, 10, 1, tzinfo=BERLIN),
        period_end=datetime(2026, 11, 1, tzinfo=BERLIN),
        currency="USD",
        components=["stt", "llm"],
        cost_centers=[CostCenterInfo("sales", "Sales", "owner@example.com")],
        lines=[line],
        breakdowns={"sales": [by_reason]},
        reconciliation=Reconciliation(Decimal("1.10"), Decimal(0), Decimal("1.10"), Decimal(0)),
        provenance=Provenance("run-1", "c" * 64, "m" * 64, {"batch-000.json": "f" * 64}, "test"),
    )


DAILY = Breakdown(
    "daily",
    "Daily",
    ["day", "week_coverage", "reason", "cost_usd"],
    [[date(2026, 10, 5), "Full week", "2026-10-05", Decimal("1.10")]],
    ["Total", "", "", Decimal("1.10")],
)


def inline_sample() -> Statement:
    statement = sample()
    return replace(statement, breakdowns={"sales": [*statement.breakdowns["sales"], DAILY]})


def make_folder(path: UPath) -> None:
    path.mkdir(parents=True, exist_ok=True)


def stored(tmp_path: Path, statement: Statement) -> Statement:
    work = UPath(tmp_path)
    breakdowns = {"sales": statement.breakdowns["sales"], "support": []}
    return replace(statement, breakdowns=store_breakdowns(work, breakdowns, make_folder))


def test_statement_json_of_the_previous_version_reads_as_written() -> None:
    """A draft published before the upgrade (its breakdowns inline) is approved after it:
    it reads back whole, with its cells' types, and an inline statement still dumps to
    exactly those bytes."""
    raw = INLINE.read_bytes()

    again = statement_json.loads(raw)

    assert again == inline_sample()
    assert isinstance(again.breakdowns, dict)
    assert [type(cell) for cell in again.breakdowns["sales"][1].rows[0]] == [
        date,
        str,
        str,
        Decimal,
    ]
    assert statement_json.dumps(inline_sample()) == raw


def test_a_published_draft_of_the_previous_version_loads_from_its_work_folder(
    tmp_path: Path,
) -> None:
    """What the approval step does with it (``workfolder.load_statement``)."""
    raw = INLINE.read_bytes()
    (tmp_path / "statement-published.json").write_bytes(raw)
    step = {"statement": "statement-published.json", "sha256": hashlib.sha256(raw).hexdigest()}

    assert load_statement(UPath(tmp_path), step) == inline_sample()


def test_stored_breakdowns_are_the_same_tables_one_file_per_cost_center(tmp_path: Path) -> None:
    statement = stored(tmp_path, inline_sample())

    assert isinstance(statement.breakdowns, StoredBreakdowns)
    assert list(statement.breakdowns) == ["sales", "support"]
    assert statement.breakdowns["sales"] == inline_sample().breakdowns["sales"]
    assert statement.breakdowns["support"] == []
    assert sorted(p.name for p in (tmp_path / "breakdowns").iterdir()) == ["0000.json"]
    assert loads_tables(dumps_tables([DAILY])) == [DAILY]


def test_a_statement_with_stored_breakdowns_carries_their_index_only(tmp_path: Path) -> None:
    statement = stored(tmp_path, inline_sample())

    raw = statement_json.dumps(statement)
    document = json.loads(raw)
    again = statement_json.loads(raw, UPath(tmp_path))

    assert document["breakdowns"] == {}
    assert document["breakdown_files"]["support"] is None
    assert document["breakdown_files"]["sales"]["file"] == "breakdowns/0000.json"
    assert again == statement
    assert statement_json.dumps(again) == raw
    with pytest.raises(StatementJsonError, match="work folder"):
        statement_json.loads(raw)


def test_the_index_form_is_the_document_the_json_writer_made_and_reads_back_as_before(
    tmp_path: Path,
) -> None:
    """pydantic writes the fields (compact, UTF-8) and the index is spliced after them: the
    same JSON document as ``json.dumps`` of ``dump_python`` (ASCII escapes, as statements
    in work folders of earlier runs are written), and either form reads back the same."""
    statement = stored(tmp_path, inline_sample())
    statement = replace(
        statement,
        org_name="Société Générale – Zürich ☎",
        lines=[
            replace(line, cost_center_name=f"{line.cost_center_name} „Ost“")
            for line in statement.lines
        ],
    )
    fields = statement_json._ADAPTER.dump_python(replace(statement, breakdowns={}), mode="json")
    files = statement.breakdowns.files
    fields["breakdown_files"] = {
        center: None if entry is None else {"file": entry[0], "sha256": entry[1]}
        for center, entry in files.items()
    }
    earlier = json.dumps(fields, separators=(",", ":")).encode()

    raw = statement_json.dumps(statement)

    assert json.loads(raw) == json.loads(earlier)
    assert "Zürich ☎".encode() in raw
    assert statement_json.loads(raw, UPath(tmp_path)) == statement
    assert statement_json.loads(earlier, UPath(tmp_path)) == statement


def test_stored_breakdowns_are_handed_on_not_written_again(tmp_path: Path) -> None:
    statement = stored(tmp_path, inline_sample())

    again = store_breakdowns(UPath(tmp_path), statement.breakdowns, make_folder)

    assert again is statement.breakdowns


def test_an_altered_or_missing_breakdowns_file_is_refused_naming_it(tmp_path: Path) -> None:
    statement = stored(tmp_path, inline_sample())
    path = tmp_path / "breakdowns" / "0000.json"
    path.write_bytes(path.read_bytes().replace(b"1.10", b"1.11"))

    with pytest.raises(BreakdownsFileError, match=r"0000\.json changed"):
        statement.breakdowns["sales"]
    path.unlink()
    with pytest.raises(BreakdownsFileError, match="missing"):
        statement.breakdowns["sales"]


def _groups(*entries: tuple[GroupKey, list[str]]) -> dict[GroupKey, list[Decimal]]:
    return {key: [Decimal(v) for v in values] for key, values in entries}


SHARDS = [
    [
        _groups(
            ((date(2026, 10, 1), "a1"), ["1", "0.10"]), ((date(2026, 10, 2), None), ["2", "0.2"])
        ),
        _groups((("x",), ["3", "1.005"])),
        {},
    ],
    [
        _groups(((date(2026, 10, 1), "a1"), ["4", "0.015"])),
        {},
        _groups(((), ["5", "2"])),
    ],
]


def _written(tmp_path: Path) -> list[tuple[UPath, str]]:
    files = []
    for shard, groups in enumerate(SHARDS):
        raw = dumps_groups(groups)
        path = tmp_path / f"groups-{shard:03d}.jsonl"
        path.write_bytes(raw)
        files.append((UPath(path), hashlib.sha256(raw).hexdigest()))
    return files


def test_merged_groups_add_up_as_the_exact_sums_merge_does(tmp_path: Path) -> None:
    files = _written(tmp_path)
    copies = [[{key: list(v) for key, v in g.items()} for g in shard] for shard in SHARDS]
    expected = ExactSums(measures=[], groups=copies[0])
    expected.add(ExactSums(measures=[], groups=copies[1]))

    with MergedGroups(files, 3) as merged:
        assert list(merged) == expected.groups
        assert merged[0] == expected.groups[0], "an earlier line again: the files start over"
        assert [str(v) for v in merged[0][(date(2026, 10, 1), "a1")]] == ["5", "0.115"]


def test_altered_shard_groups_are_refused_before_any_is_used(tmp_path: Path) -> None:
    files = _written(tmp_path)
    path = tmp_path / "groups-001.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"5"', b'"6"'))

    with pytest.raises(ShardGroupsError, match=r"groups-001\.jsonl changed"):
        MergedGroups(files, 3)


money = st.decimals(min_value=-(10**6), max_value=10**6, places=4, allow_nan=False)
counts = st.integers(min_value=-5, max_value=10**5).map(Decimal)


@given(numerator=money, denominator=st.one_of(counts, money))
def test_unit_rates_in_integers_round_as_fractions_do(
    numerator: Decimal, denominator: Decimal
) -> None:
    """``breakdowns._ratio`` against the ``Fraction`` rounding it replaced."""
    expected = (
        round_money(Fraction(numerator) / Fraction(denominator), RATE_QUANTUM)
        if denominator
        else None
    )
    got = _ratio(numerator.as_integer_ratio(), denominator.as_integer_ratio())
    assert (str(got), type(got)) == (str(expected), type(expected))
