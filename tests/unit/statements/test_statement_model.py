"""The statement model's own rules: what a restatement's changes are, and the line kinds
and statuses it shares with the close modules."""

from __future__ import annotations

import typing
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from vapi_chargeback.close import corrections, lifecycle, tieout
from vapi_chargeback.statement import (
    CORRECTION_PREFIX,
    DRAFT,
    FINAL,
    INVOICE_ADJUSTMENT,
    ChangesVs,
    Status,
)
from vapi_chargeback.statements.csv import read_csv, write_csv

from support.statement_samples import sample_statement


def test_changes_against_the_published_csv_list_only_real_changes(tmp_path: Path) -> None:
    """Minutes published to the hundredth equal the unrounded recomputed ones: only the
    re-costed line, the line gone and the line added are changes."""
    v1 = sample_statement()
    path = tmp_path / "v1.csv"
    write_csv(v1, path)
    booked = read_csv(path.read_bytes()).lines
    assert booked[2].minutes == Decimal("61.33") != v1.lines[2].minutes
    recosted = replace(v1.lines[0], cost_usd=Decimal("100.01"))
    added = replace(v1.lines[5], assistant_id="asst-10")
    recomputed = [recosted, *v1.lines[1:4], v1.lines[5], added]

    changes = ChangesVs.between(1, booked, recomputed)

    assert changes.version == 1
    assert [(item.kind, item.key) for item in changes.lines] == [
        ("changed", ("sales", "emea", "asst-1", "direct")),
        ("removed", ("UNALLOCATED", "", "", "unallocated:no-assistant")),
        ("added", ("UNALLOCATED", "", "asst-10", "unallocated:unmapped-assistant")),
    ]
    assert changes.lines[0].old == booked[0] and changes.lines[0].new == recosted
    assert ChangesVs.between(1, booked, v1.lines).lines == [], "an unchanged month: no changes"


def test_a_component_missing_on_one_side_counts_as_zero() -> None:
    line = sample_statement().lines[1]
    without = replace(line, components_usd={"llm": Decimal(0)})

    assert ChangesVs.between(1, [line], [without]).lines == []
    moved = replace(line, components_usd={"llm": Decimal("1.00")})
    assert len(ChangesVs.between(1, [line], [moved]).lines) == 1


def test_line_kinds_and_statuses_are_the_close_modules_own() -> None:
    assert INVOICE_ADJUSTMENT == tieout.ADJUSTMENT
    assert CORRECTION_PREFIX == corrections.CORRECTION_PREFIX
    assert typing.get_args(Status) == typing.get_args(lifecycle.Status)
    assert (DRAFT, FINAL) == (lifecycle.DRAFT, lifecycle.FINAL)


def test_a_name_learnt_or_changed_is_no_change_of_figures(tmp_path: Path) -> None:
    """Booked lines read back from a CSV written before names existed, or under an older
    name, compare equal to recomputed lines that now carry a name."""
    v1 = sample_statement()
    path = tmp_path / "v1.csv"
    write_csv(replace(v1, lines=[replace(line, assistant_name="") for line in v1.lines]), path)
    booked = read_csv(path.read_bytes()).lines
    named = [replace(line, assistant_name=f"Renamed {line.assistant_id}") for line in v1.lines]

    assert ChangesVs.between(1, booked, named).lines == []
    recosted = replace(named[0], cost_usd=named[0].cost_usd + Decimal("0.01"))
    changes = ChangesVs.between(1, booked, [recosted, *named[1:]]).lines
    assert [(item.kind, item.key) for item in changes] == [("changed", named[0].key)]
