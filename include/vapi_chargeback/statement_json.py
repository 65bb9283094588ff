"""A lossless JSON form of :class:`Statement`, so tasks on different workers can hand it on.

JSON has no decimal type: money travels as strings and comes back as ``Decimal``. Breakdown
cells mix text, numbers and dates, so amounts and dates are tagged (``{"d": "12.34"}``,
``{"date": "2026-10-05"}``) — otherwise a cost or a day would come back as text and land in
a workbook as a string.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter

from vapi_chargeback.statement import Statement

_ADAPTER = TypeAdapter(Statement)
_DECIMAL_TAG = "d"
_DATE_TAG = "date"


def dumps(statement: Statement) -> bytes:
    """Deterministic bytes: the same statement always gives the same JSON.

    Keys keep their order (no ``sort_keys``): the order of ``components_usd`` is the order of
    the statement's columns, and a dict carries it.
    """
    data = _ADAPTER.dump_python(statement, mode="json")
    for cost_center, items in statement.breakdowns.items():
        for index, breakdown in enumerate(items):
            table = data["breakdowns"][cost_center][index]
            table["rows"] = [[_encode_cell(cell) for cell in row] for row in breakdown.rows]
            table["total"] = [_encode_cell(cell) for cell in breakdown.total]
    return json.dumps(data, separators=(",", ":")).encode()


def loads(raw: bytes) -> Statement:
    data: dict[str, Any] = json.loads(raw)
    for items in data.get("breakdowns", {}).values():
        for breakdown in items:
            breakdown["rows"] = [[_decode_cell(cell) for cell in row] for row in breakdown["rows"]]
            breakdown["total"] = [_decode_cell(cell) for cell in breakdown.get("total", [])]
    return _ADAPTER.validate_python(data)


def _encode_cell(cell: object) -> object:
    if isinstance(cell, Decimal):
        return {_DECIMAL_TAG: str(cell)}
    if isinstance(cell, date):
        return {_DATE_TAG: cell.isoformat()}
    return cell


def _decode_cell(cell: Any) -> Any:
    if isinstance(cell, dict):
        if _DATE_TAG in cell:
            return date.fromisoformat(cell[_DATE_TAG])
        return Decimal(cell[_DECIMAL_TAG])
    return cell
