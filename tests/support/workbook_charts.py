"""Read the native charts of an ``.xlsx`` back: where each is anchored and what it plots.

A chart part (``xl/charts/chartN.xml``) holds only references (``<c:f>``) to cells; the
numbers live in the sheets. This follows the package's relationships from each sheet to its
drawing to its charts, and resolves every reference with openpyxl, so a test can compare
what a chart would draw with the figures it is meant to show.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import openpyxl

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
