"""The rules of ``chargeback.yaml`` that span several fields: unique ids and names, one pool
per source, percentages naming real cost centers and adding up to 100, a GL account for
every cost center when a ``gl:`` block is set (``exports.accounts``), and mapping rules that
name real cost centers, compile and are not shadowed (``mapping_rules``).

They read the raw document, so ``load_config`` reports them together with the per-field
problems pydantic finds; the config model runs them again when built from Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from vapi_chargeback.analytics.models import field_path
from vapi_chargeback.budgets.settings import budget_problems
from vapi_chargeback.exports.accounts import gl_problems
from vapi_chargeback.mapping_rules import rule_problems
from vapi_chargeback.money import HUNDRED
from vapi_chargeback.yamldoc import Loc


def cross_check_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Rules spanning several fields, each with the path of the field to change.

    Works on the raw document, tolerating wrong types (other checks report those), so a
    file with a bad slug *and* a duplicate id gets both problems in one go.
    """
    centers = _dicts(data.get("cost_centers"))
    pools = _dicts(data.get("shared_costs"))
    problems = _duplicates(centers, ("cost_centers",), "id", "cost center id")
    for index, center in centers:
        queries = _dicts(center.get("queries"))
        problems += _duplicates(
            queries, ("cost_centers", index, "queries"), "id", "query definition id"
        )
    problems += _duplicates(pools, ("shared_costs",), "name", "pool name")
    known = sorted({center["id"] for _, center in centers if isinstance(center.get("id"), str)})
    sources = [index for index, pool in pools if pool.get("source") is not None]
    for index in sources[1:]:
        problems.append(
            (
                ("shared_costs", index, "source"),
                f"a second pool re-spreads the same source (first: shared_costs[{sources[0]}]);"
                " keep one",
            )
        )
    for index, pool in pools:
        percentages = pool.get("percentages")
        if not isinstance(percentages, dict):
            continue
        loc: Loc = ("shared_costs", index, "percentages")
        for center_id, pct in percentages.items():
            if center_id not in known:
                problems.append(
                    (
                        (*loc, center_id),
                        f"{center_id!r} is not a cost center id; use one of {known}",
                    )
                )
            if isinstance(pct, int | Decimal) and pct < 0:
                problems.append(((*loc, center_id), f"percentage {pct} is negative"))
        values = list(percentages.values())
        if all(isinstance(v, int | Decimal) and not isinstance(v, bool) for v in values):
            total = sum((Decimal(v) for v in values), Decimal(0))
            if total != HUNDRED:
                problems.append((loc, f"percentages sum to {total}, not 100; adjust them"))
    names = [pool["name"] for _, pool in pools if isinstance(pool.get("name"), str)]
    problems += rule_problems(data.get("mapping_rules"), known)
    problems += budget_problems(data)
    return problems + gl_problems(data.get("gl"), centers, names)


def _dicts(value: object) -> list[tuple[int, dict[str, Any]]]:
    if not isinstance(value, list):
        return []
    return [(index, item) for index, item in enumerate(value) if isinstance(item, dict)]


def _duplicates(
    items: list[tuple[int, dict[str, Any]]], loc: Loc, field: str, what: str
) -> list[tuple[Loc, str]]:
    first_seen: dict[str, int] = {}
    problems: list[tuple[Loc, str]] = []
    for index, item in items:
        value = item.get(field)
        if not isinstance(value, str):
            continue
        if value in first_seen:
            problems.append(
                (
                    (*loc, index, field),
                    f"duplicate {what} {value!r} (also at {field_path(loc)}[{first_seen[value]}]);"
                    " make it unique",
                )
            )
        else:
            first_seen[value] = index
    return problems
