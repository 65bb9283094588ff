"""Rendering reads each cost center's stored breakdown tables once: validation leaves their
contents to the workbook that reads them, and a bad table still refuses the whole set."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from upath import UPath

from vapi_chargeback import breakdown_files
from vapi_chargeback.breakdown_files import store_breakdowns
from vapi_chargeback.statement import Breakdown, Statement
from vapi_chargeback.statements.render import render_statement
from vapi_chargeback.statements.validate import StatementError, validate_statement

from support.statement_samples import sample_statement


def _stored(tmp_path: Path, tables: list[Breakdown]) -> Statement:
    work = UPath(tmp_path / "work")
    stored = store_breakdowns(work, {"sales": tables, "support": []}, _make_folder)
    return replace(sample_statement(), breakdowns=stored)


def _make_folder(path: UPath) -> None:
    path.mkdir(parents=True, exist_ok=True)


def test_stored_tables_are_decoded_once_and_give_the_workbook_of_inline_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inline = sample_statement()
    expected = render_statement(inline, tmp_path / "inline")
    reads: list[int] = []
    loads = breakdown_files.loads_tables
    monkeypatch.setattr(breakdown_files, "loads_tables", lambda raw: reads.append(1) or loads(raw))

    rendered = render_statement(_stored(tmp_path, inline.breakdowns["sales"]), tmp_path / "stored")

    assert len(reads) == 1
    assert rendered.files == expected.files


def test_a_bad_stored_table_refuses_the_set_as_validation_names_it(tmp_path: Path) -> None:
    bad = Breakdown("by-reason", "Minutes by reason", ["reason", "minutes"], [["x", 1.5]])
    statement = _stored(tmp_path, [bad])
    with pytest.raises(StatementError) as validated:
        validate_statement(statement)

    with pytest.raises(StatementError) as rendered:
        render_statement(statement, tmp_path / "out")

    assert "breakdowns['sales'][0].rows[0][1]: float is not" in str(rendered.value)
    assert rendered.value.problems == validated.value.problems


def test_other_problems_are_listed_with_the_stored_tables_ones(tmp_path: Path) -> None:
    bad = Breakdown("by-reason", "Minutes by reason", ["reason", "minutes"], [["x", 1.5]])
    statement = replace(_stored(tmp_path, [bad]), currency="")

    with pytest.raises(StatementError) as refused:
        render_statement(statement, tmp_path / "out")

    assert refused.value.problems[0] == "currency: empty"
    assert any("float is not" in problem for problem in refused.value.problems)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.xlsx"))
