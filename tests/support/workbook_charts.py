"""Read the native charts of an ``.xlsx`` back: where each is anchored and what it plots.

A chart part (``xl/charts/chartN.xml``) holds only references (``<c:f>``) to cells; the
numbers live in the sheets. This follows the package's relationships from each sheet to its
drawing to its charts, and resolves every reference with openpyxl, so a test can compare
what a chart would draw with the figures it is meant to show.
"""

from __future__ import annotations

import calendar
import posixpath
import re
import zipfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import openpyxl

from support.statement_checks import csv_rows

TOP_ASSISTANTS = 10
"""As ``statements.charts.TOP_ASSISTANTS`` promises owners (restated: the check is independent)."""

CHART = "{http://schemas.openxmlformats.org/drawingml/2006/chart}"
MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
DOC_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
REFERENCE = re.compile(
    r"^(?:'((?:[^']|'')+)'|([^'!]+))!\$?([A-Z]+)\$?(\d+)(?::\$?([A-Z]+)\$?(\d+))?$"
)


@dataclass(frozen=True)
class Series:
    title_ref: str
    categories_ref: str
    values_ref: str
    title: Any
    categories: list[Any]
    values: list[Any]


@dataclass(frozen=True)
class PlottedChart:
    part: str
    """``xl/charts/chartN.xml``."""
    sheet: str
    """The sheet the chart is anchored on."""
    kinds: list[str]
    """Plot types in the chart (``barChart``, ``lineChart`` …)."""
    grouping: str | None
    bar_direction: str | None
    series: list[Series]

    @property
    def references(self) -> list[str]:
        return [
            ref
            for item in self.series
            for ref in (item.title_ref, item.categories_ref, item.values_ref)
        ]


def plotted_charts(path: Path) -> list[PlottedChart]:
    """Every chart of the workbook at ``path``, with its series' references resolved."""
    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        with zipfile.ZipFile(path) as archive:
            return [_chart(archive, workbook, sheet, part) for sheet, part in _chart_parts(archive)]
    finally:
        workbook.close()


def chart_parts(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return sorted(
            name for name in archive.namelist() if re.fullmatch(r"xl/charts/chart\d+\.xml", name)
        )


def resolve(workbook: Any, reference: str) -> tuple[str, list[Any]]:
    """The sheet title and the cell values, row by row then column by column, of ``reference``."""
    match = REFERENCE.match(reference)
    assert match, f"not a cell reference: {reference!r}"
    quoted, plain, first_col, first_row, last_col, last_row = match.groups()
    title = quoted.replace("''", "'") if quoted else plain
    assert title in workbook.sheetnames, f"{reference!r} names no sheet of {workbook.sheetnames}"
    last_col, last_row = last_col or first_col, last_row or first_row
    rows = workbook[title].iter_rows(
        min_row=int(first_row),
        max_row=int(last_row),
        min_col=openpyxl.utils.column_index_from_string(first_col),
        max_col=openpyxl.utils.column_index_from_string(last_col),
        values_only=True,
    )
    return title, [value for row in rows for value in row]


def _chart_parts(archive: zipfile.ZipFile) -> list[tuple[str, str]]:
    """(sheet title, chart part) for every chart, following workbook → sheet → drawing → chart."""
    book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    targets = _relationships(archive, "xl/workbook.xml")
    found = []
    for sheet in book.iter(f"{MAIN}sheet"):
        sheet_part = targets[sheet.attrib[DOC_REL]]
        for drawing in _relationships(archive, sheet_part).values():
            if "/drawings/" not in drawing:
                continue
            found += [
                (sheet.attrib["name"], chart)
                for chart in _relationships(archive, drawing).values()
                if "/charts/" in chart
            ]
    return found


def _relationships(archive: zipfile.ZipFile, part: str) -> dict[str, str]:
    folder, name = posixpath.split(part)
    rels = posixpath.join(folder, "_rels", f"{name}.rels")
    if rels not in archive.namelist():
        return {}
    tree = ElementTree.fromstring(archive.read(rels))
    targets = {}
    for item in tree.iter(f"{RELS}Relationship"):
        target = item.attrib["Target"]
        resolved = (
            target.lstrip("/")
            if target.startswith("/")
            else posixpath.normpath(posixpath.join(folder, target))
        )
        targets[item.attrib["Id"]] = resolved
    return targets


def _chart(archive: zipfile.ZipFile, workbook: Any, sheet: str, part: str) -> PlottedChart:
    tree = ElementTree.fromstring(archive.read(part))
    plot = tree.find(f"{CHART}chart/{CHART}plotArea")
    assert plot is not None, f"{part}: no plot area"
    kinds = [child.tag.removeprefix(CHART) for child in plot if child.tag.endswith("Chart")]
    grouping = plot.find(f".//{CHART}grouping")
    direction = plot.find(f".//{CHART}barDir")
    series = []
    for item in plot.iter(f"{CHART}ser"):
        refs = [item.find(f"{CHART}{slot}//{CHART}f") for slot in ("tx", "cat", "val")]
        assert all(ref is not None and ref.text for ref in refs), (
            f"{part}: a series without references"
        )
        title_ref, categories_ref, values_ref = (ref.text or "" for ref in refs if ref is not None)
        series.append(
            Series(
                title_ref,
                categories_ref,
                values_ref,
                resolve(workbook, title_ref)[1][0],
                resolve(workbook, categories_ref)[1],
                resolve(workbook, values_ref)[1],
            )
        )
    return PlottedChart(
        part,
        sheet,
        kinds,
        None if grouping is None else grouping.attrib["val"],
        None if direction is None else direction.attrib["val"],
        series,
    )


CENT = Decimal("0.01")


def assert_charts_plot_the_published_csv(workbook: Path) -> None:
    """A published workbook's charts hold the figures of the statement CSV beside it.

    Finance: each cost center's stack adds up to its lines' cost, Shared to its pool lines,
    each component and Other to the other lines (pools show only as Shared, whatever
    components a pool line carries in the CSV), and each daily line to its usage lines
    (direct, or unallocated); an
    owner's daily line to their direct lines and their top assistants to those lines summed
    per assistant, largest first."""
    found = re.search(r"(\d{4}-\d{2})\.xlsx$", workbook.name)
    assert found, f"{workbook}: not a statement workbook name"
    month = found.group(1)
    folder = workbook.parent.parent if workbook.parent.name == "cost-centers" else workbook.parent
    rows = csv_rows(folder, month)
    assert chart_parts(workbook), f"{workbook}: no xl/charts/chart*.xml"
    charts = {chart.sheet: chart for chart in plotted_charts(workbook)}
    for chart in charts.values():
        for item in chart.series:
            assert all(ref.startswith(f"'{chart.sheet}'!") for ref in chart.references), (
                f"{workbook} {chart.part}: plots cells outside its sheet {chart.sheet!r}"
            )
            assert len(item.categories) == len(item.values), f"{workbook} {chart.part}"
    if workbook.name == f"chargeback-{month}.xlsx":
        _assert_finance_charts(workbook, charts, rows, month)
    else:
        center = workbook.name.removesuffix(f"-{month}.xlsx")
        direct = [
            row for row in rows if row["cost_center_id"] == center and row["allocation"] == "direct"
        ]
        _assert_owner_charts(workbook, charts, direct, month)


def _money(values: list[Any]) -> list[Decimal]:
    assert all(isinstance(value, int | float) for value in values), f"not all numbers: {values}"
    return [Decimal(str(value)).quantize(CENT) for value in values]


def _sum(rows: list[dict[str, str]], column: str = "cost_usd") -> Decimal:
    return sum((Decimal(row[column]) for row in rows), Decimal(0))


def _days(month: str) -> int:
    year, number = map(int, month.split("-"))
    return calendar.monthrange(year, number)[1]


def _assert_finance_charts(
    workbook: Path, charts: dict[str, PlottedChart], rows: list[dict[str, str]], month: str
) -> None:
    by_name: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_name.setdefault(row["cost_center_name"], []).append(row)
    stacked = charts["Cost by component"]
    assert (stacked.grouping, stacked.bar_direction) == ("stacked", "col"), workbook
    names = stacked.series[0].categories
    assert set(by_name) <= set(names), f"{workbook}: cost centers with lines but no bar"
    columns = [_money(item.values) for item in stacked.series]
    for index, name in enumerate(names):
        lines = by_name.get(name, [])
        assert sum((values[index] for values in columns), Decimal(0)) == _sum(lines), (
            f"{workbook}: the {name!r} stack does not add up to its lines' cost"
        )
        pools = [row for row in lines if row["allocation"].startswith("shared:")]
        rest = [row for row in lines if not row["allocation"].startswith("shared:")]
        for item, values in zip(stacked.series, columns, strict=True):
            if item.title == "Shared (USD)":
                expected = _sum(pools)
            elif item.title == "Other (USD)":
                expected = _sum(rest, "other_usd")
            else:
                expected = _sum(rest, f"{str(item.title).removesuffix(' (USD)').lower()}_usd")
            assert values[index] == expected, (
                f"{workbook}: {name!r} {item.title} plots {values[index]}, its lines hold {expected}"
            )
    daily = charts["Daily cost"]
    assert daily.series, f"{workbook}: a daily chart without lines"
    for item in daily.series:
        name = str(item.title).removesuffix(" (USD)")
        usage = [
            row
            for row in by_name.get(name, [])
            if row["allocation"] == "direct" or row["allocation"].startswith("unallocated:")
        ]
        assert len(item.values) == _days(month), f"{workbook}: {name!r} is not one value per day"
        assert sum(_money(item.values), Decimal(0)) == _sum(usage), (
            f"{workbook}: {name!r}'s days do not add up to its usage lines"
        )


def _assert_owner_charts(
    workbook: Path, charts: dict[str, PlottedChart], direct: list[dict[str, str]], month: str
) -> None:
    (daily,) = charts["Daily cost"].series
    assert len(daily.values) == _days(month), workbook
    assert sum(_money(daily.values), Decimal(0)) == _sum(direct), (
        f"{workbook}: the days do not add up to the direct lines"
    )
    if not direct:
        assert "Top assistants" not in charts, workbook
        return
    cost: dict[str, Decimal] = {}
    names: dict[str, str] = {}
    for row in direct:
        cost[row["assistant_id"]] = cost.get(row["assistant_id"], Decimal(0)) + Decimal(
            row["cost_usd"]
        )
        names.setdefault(row["assistant_id"], row.get("assistant_name", ""))
    ranked = sorted(cost, key=lambda assistant: (-cost[assistant], assistant))
    (bars,) = charts["Top assistants"].series
    count = len(bars.values)
    assert count == min(len(ranked), TOP_ASSISTANTS), workbook
    assert _money(bars.values) == [cost[assistant] for assistant in ranked[:count]], workbook
    assert bars.categories == [
        names[assistant] or assistant or "(no assistant)" for assistant in ranked[:count]
    ], workbook
