"""Stored batches the fetch provably checked are not checked again; everything else is.

The fetch records a fingerprint of the rules and queries it checked a body by
(``analytics.checked``). :class:`StoredResults` skips the row checks of a body only when
that record equals what this code gives the plan's queries: a tampered or missing
fingerprint, a query planned otherwise, or other rules, and a bad row fails as before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from vapi_chargeback import workfolder
from vapi_chargeback.analytics import checked as checked_module
from vapi_chargeback.analytics.checked import (
    RULE_SOURCES,
    RULES_VERSION,
    checked_fingerprint,
    rules_version,
)
from vapi_chargeback.analytics.checks import check_results
from vapi_chargeback.analytics.client import BatchResponse
from vapi_chargeback.analytics.decode import iter_json_array
from vapi_chargeback.analytics.errors import UnusableResponseError
from vapi_chargeback.analytics.models import AnalyticsQuery
from vapi_chargeback.analytics.row_cap import post_within_cap
from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.plan import Plan, build_plan
from vapi_chargeback.workfolder import FetchedBatch, StoredResults

from support.core_fixtures import Call, base_config, fake_results

D = Decimal
CALLS = [
    Call(date(2026, 10, 1), D("3.00"), "asst-sales"),
    Call(date(2026, 10, 2), D("1.25"), "asst-support", variable="sales"),
    Call(date(2026, 10, 3), D("0.50"), None),
]


@pytest.fixture
def plan(config_from: Callable[[dict[str, Any]], ChargebackConfig]) -> Plan:
    config = config_from(base_config())
    return build_plan(config, StatementPeriod.for_month("2026-10", config.timezone))


def _store(work: Path, plan: Plan, *, broken: bool = False) -> list[FetchedBatch]:
    """Each batch's body as the API answers it, stored with a record as the fetch writes it;
    ``broken``: the first row of the first result with a negative cost."""
    results = fake_results(plan, CALLS)
    (work / "raw").mkdir(parents=True, exist_ok=True)
    records = []
    for index, names in enumerate(plan.batches):
        items = [
            {
                **results[name].model_dump(mode="json", by_alias=True, exclude={"result"}),
                "result": [dict(row) for row in results[name].result],
            }
            for name in names
        ]
        if broken and index == 0:
            row = items[0]["result"][0]
            key = next(key for key, value in row.items() if isinstance(value, Decimal))
            row[key] = Decimal("-1.00")
        raw = json.dumps(items, default=_number).encode()
        for item, _, _ in iter_json_array(raw):
            assert item["result"]
        file = f"batch-{index:03d}.json"
        (work / "raw" / file).write_bytes(raw)
        records.append(
            FetchedBatch(
                index=index,
                file=file,
                sha256=hashlib.sha256(raw).hexdigest(),
                size=len(raw),
                attempts=1,
                status_code=200,
                spans={item["name"]: (start, end) for item, start, end in iter_json_array(raw)},
                checked=checked_fingerprint([plan.query(name) for name in names]),
            )
        )
    return records


def _number(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(value)


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The requests ``StoredResults`` checked rows of, in order."""
    seen: list[str] = []
    real = check_results

    def counting(*args: Any, **kwargs: Any) -> None:
        seen.append(kwargs["request"])
        real(*args, **kwargs)

    monkeypatch.setattr(workfolder, "check_results", counting)
    return seen


def _read_all(work: Path, plan: Plan, records: list[FetchedBatch]) -> None:
    stored = StoredResults(work, plan, records)
    for name in plan.query_names:
        assert stored[name].name == name


def test_a_body_checked_by_the_fetch_by_these_rules_is_not_checked_again(
    tmp_path: Path, plan: Plan, checks: list[str]
) -> None:
    records = _store(tmp_path, plan)
    _read_all(tmp_path, plan, records)
    assert checks == []


def test_without_a_fingerprint_every_result_is_checked(
    tmp_path: Path, plan: Plan, checks: list[str]
) -> None:
    records = [record.model_copy(update={"checked": ""}) for record in _store(tmp_path, plan)]
    _read_all(tmp_path, plan, records)
    assert len(checks) == len(plan.query_names)


@pytest.mark.parametrize("checked", ["", "0" * 64, "tampered"])
def test_a_bad_row_fails_unless_the_fetch_provably_checked_it(
    tmp_path: Path, plan: Plan, checked: str
) -> None:
    records = _store(tmp_path, plan, broken=True)
    records[0] = records[0].model_copy(update={"checked": checked})
    with pytest.raises(UnusableResponseError, match="is negative"):
        _read_all(tmp_path, plan, records)


def test_a_batch_fingerprinted_for_other_rules_is_checked_again(tmp_path: Path, plan: Plan) -> None:
    records = _store(tmp_path, plan, broken=True)
    queries = [plan.query(name) for name in plan.batches[0]]
    older = checked_fingerprint(queries, rules="0" * 64)
    records[0] = records[0].model_copy(update={"checked": older})
    with pytest.raises(UnusableResponseError, match="is negative"):
        _read_all(tmp_path, plan, records)


def test_a_query_planned_otherwise_is_checked_again(tmp_path: Path, plan: Plan) -> None:
    """The record was made for a query with one operation less: the plan's query is not
    what the fetch checked the rows against."""
    records = _store(tmp_path, plan, broken=True)
    names = plan.batches[0]
    sent = [plan.query(name) for name in names]
    first = sent[0]
    sent[0] = first.model_copy(update={"operations": first.operations[:-1]})
    records[0] = records[0].model_copy(update={"checked": checked_fingerprint(sent)})
    with pytest.raises(UnusableResponseError, match="is negative"):
        _read_all(tmp_path, plan, records)


def test_the_fingerprint_changes_with_every_query_field_and_their_order(plan: Plan) -> None:
    queries = [plan.query(name) for name in plan.batches[0]]
    base = checked_fingerprint(queries)
    first = queries[0]
    assert first.time_range is not None
    changed: list[AnalyticsQuery] = [
        first.model_copy(update={"group_by": [*(first.group_by or []), "type"]}),
        first.model_copy(update={"group_by_variable_value": None}),
        first.model_copy(update={"time_range": first.time_range.model_copy(update={"step": None})}),
        first.model_copy(update={"name": first.name + "x"}),
    ]
    for query in changed:
        assert checked_fingerprint([query, *queries[1:]]) != base
    assert len(queries) > 1
    assert checked_fingerprint([*queries[1:], first]) != base
    assert checked_fingerprint(queries) == base


def test_the_rules_are_the_source_of_every_listed_file_and_the_python(tmp_path: Path) -> None:
    here = Path(checked_module.__file__).parent
    copies = []
    for name in RULE_SOURCES:
        copy = tmp_path / name
        copy.write_bytes((here / name).read_bytes())
        copies.append(copy)
    assert rules_version(copies) == RULES_VERSION
    assert rules_version(copies, python="3.0") != RULES_VERSION
    for copy in copies:
        original = copy.read_bytes()
        copy.write_bytes(original + b"\n")
        assert rules_version(copies) != RULES_VERSION, copy.name
        copy.write_bytes(original)


def test_every_module_deciding_the_fetch_check_is_among_the_rules() -> None:
    """The modules the fetch's check runs through (and this one) are fingerprinted."""
    for module in ("checks", "client", "decode", "models", "numbers", "responses", "row_cap"):
        assert f"{module}.py" in RULE_SOURCES


class _Client:
    """Answers every batch with a stored body, as ``post_batch(check=True)`` does."""

    max_queries_per_request = 10

    def __init__(self) -> None:
        self.checks: list[bool] = []

    def post_batch(
        self, queries: list[AnalyticsQuery], *, batch_index: int, keep_results: bool, check: bool
    ) -> BatchResponse:
        self.checks.append(check)
        raw = b"[]"
        return BatchResponse([], raw, hashlib.sha256(raw).hexdigest(), 200, 1)


def test_the_fetch_records_the_fingerprint_of_its_checked_queries(plan: Plan) -> None:
    queries = [plan.query(name) for name in plan.batches[0]]
    client = _Client()
    answer = post_within_cap(client, queries, batch_index=0)  # type: ignore[arg-type]
    assert client.checks == [True]
    assert answer.checked == checked_fingerprint(queries)


def test_a_trusted_body_is_decoded_by_decode_fast_to_the_same_results(
    tmp_path: Path, plan: Plan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body the fetch checked goes through ``decode_fast`` (msgspec), any other through
    ``decode_json``; the results are the same, row for row."""
    records = _store(tmp_path, plan)
    untrusted = [record.model_copy(update={"checked": ""}) for record in records]
    calls: list[str] = []

    def counted(name: str, decode: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
        def decoding(raw: bytes) -> Any:
            calls.append(name)
            return decode(raw)

        return decoding

    monkeypatch.setattr(workfolder, "decode_fast", counted("fast", workfolder.decode_fast))
    monkeypatch.setattr(workfolder, "decode_json", counted("json", workfolder.decode_json))
    fast = StoredResults(tmp_path, plan, records)
    slow = StoredResults(tmp_path, plan, untrusted)
    for name in plan.query_names:
        quick, checked = fast[name], slow[name]
        assert quick.model_dump() == checked.model_dump()
        assert [repr(row) for row in quick.result] == [repr(row) for row in checked.result]
    count = len(plan.query_names)
    assert sorted(calls) == ["fast"] * count + ["json"] * count
