"""Bad inputs of every kind are refused with a clear error, and nothing is written.

One table: chargeback.yaml, the mapping CSV, call records the emulator loads, and API
responses. Each case runs the pipeline's real steps (plan → fetch → allocate → reconcile
→ publish) over an output folder that already holds a good published month, and checks
that the run fails with the expected error class and message, that the published month
is byte-for-byte what it was (``read_published`` still returns the same manifest), that
no staging leftovers are visible, and — for responses refused while fetching — that the
refused body was not even stored in the run's work folder.

Other tables refuse more of the same inputs at a lower level (counted in
``tests/reliability/README-section.md``); this one proves the refusals hold end to end.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.decode import decode_json
from vapi_chargeback.analytics.errors import (
    DamagedResponseError,
    ResponseError,
    ResponseMismatchError,
)
from vapi_chargeback.attribution import AnalyticsResultError
from vapi_chargeback.config import ConfigError
from vapi_chargeback.reconcile import ReconciliationError
from vapi_chargeback.statements.validate import StatementError
from vapi_chargeback.storage import read_published
from vapi_emulator.data import generate_calls_file
from vapi_emulator.engine import Engine
from vapi_emulator.records import MalformedRecordError

from support.reliability import (
    DEMO_CONFIG,
    DEMO_MAPPING,
    KEY,
    MONTH,
    copy_output,
    dumps_exact,
    emulator,
    hidden_leftovers,
    make_client,
    run_pipeline,
    snapshot,
)

CALLS_PER_MONTH = 3_000
CORE, ORG_TOTAL, BY_REASON = "core-allocation", "org-total", "by-reason-status"
FETCH_ERRORS = (ResponseError,)
"""Errors raised while fetching: the refused body must not be stored."""

Results = list[Any]


@dataclass(frozen=True)
class Baseline:
    output: Path
    raw: bytes
    """The good response body of the month's single batch."""
    month: dict[str, str]
    manifest: dict[str, Any]


@dataclass(frozen=True)
class Case:
    kind: str
    """``config``, ``mapping``, ``calls`` (the emulator loads them) or ``api`` (a response)."""
    make: Callable[..., Any]
    error: type[Exception]
    message: str
    """Regular expression the error message must contain."""
    client_options: dict[str, Any] = field(default_factory=dict)


# --- API responses ---------------------------------------------------------------------


def results(mutate: Callable[[Results], Any]) -> Callable[[bytes], httpx.Response]:
    """A 200 whose results are the good ones changed in place by ``mutate``."""

    def make(raw: bytes) -> httpx.Response:
        document = copy.deepcopy(decode_json(raw))
        mutate(document)
        body = dumps_exact(document)
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    return make


def replaced(build: Callable[[Results], Any]) -> Callable[[bytes], httpx.Response]:
    """A 200 whose JSON is whatever ``build`` makes of the good results."""

    def make(raw: bytes) -> httpx.Response:
        body = dumps_exact(build(decode_json(raw)))
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    return make


def raw_body(
    change: Callable[[bytes], bytes], content_type: str = "application/json"
) -> Callable[[bytes], httpx.Response]:
    def make(raw: bytes) -> httpx.Response:
        return httpx.Response(200, content=change(raw), headers={"Content-Type": content_type})

    return make


def named(document: Results, name: str) -> dict[str, Any]:
    return next(item for item in document if item["name"] == name)


def row(name: str, index: int = 0) -> Callable[[Results], dict[str, Any]]:
    return lambda document: named(document, name)["result"][index]


def set_value(name: str, key: str, value: Any, index: int = 0) -> Callable[[bytes], httpx.Response]:
    def mutate(document: Results) -> None:
        row(name, index)(document)[key] = value

    return results(mutate)


def drop_key(name: str, key: str) -> Callable[[bytes], httpx.Response]:
    def mutate(document: Results) -> None:
        del row(name)(document)[key]

    return results(mutate)


def add_to_cost(*names: str, amount: str) -> Callable[[bytes], httpx.Response]:
    def mutate(document: Results) -> None:
        for name in names:
            target = row(name)(document)
            target["sum_cost"] = Decimal(str(target["sum_cost"])) + Decimal(amount)

    return results(mutate)


def first_cost_literal(replacement: bytes) -> Callable[[bytes], bytes]:
    """Replace the first ``"sum_cost":<number>`` of the body with ``replacement``."""

    def change(raw: bytes) -> bytes:
        return re.sub(rb'("sum_cost":)[-0-9.eE+]+', rb"\g<1>" + replacement, raw, count=1)

    return change


API_CASES: dict[str, Case] = {
    "html-proxy-page": Case(
        "api",
        raw_body(
            lambda raw: (
                b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
            ),
            "text/html",
        ),
        ResponseError,
        r"not JSON \(text/html.*502 Bad Gateway.*base URL",
    ),
    "empty-body": Case("api", raw_body(lambda raw: b""), ResponseError, r"not JSON"),
    "json-object": Case(
        "api",
        replaced(lambda document: {"data": document}),
        ResponseError,
        r"JSON object where the spec promises an array",
    ),
    "json-null": Case(
        "api", replaced(lambda document: None), ResponseError, r"JSON null where the spec"
    ),
    "json-string": Case(
        "api", replaced(lambda document: "ok"), ResponseError, r"JSON string where the spec"
    ),
    "missing-name": Case(
        "api",
        results(lambda document: document[0].pop("name")),
        ResponseError,
        r"\[0\]\.name: Field required",
    ),
    "name-not-a-string": Case(
        "api",
        results(lambda document: document[0].update(name=7)),
        ResponseError,
        r"\[0\]\.name: Input should be a valid string",
    ),
    "missing-time-range": Case(
        "api",
        results(lambda document: document[1].pop("timeRange")),
        ResponseError,
        r"\[1\]\.timeRange: Field required",
    ),
    "time-range-not-an-object": Case(
        "api",
        results(lambda document: document[1].update(timeRange="October")),
        ResponseError,
        r"\[1\]\.timeRange: Input should be a valid dictionary",
    ),
    "result-not-a-list": Case(
        "api",
        results(lambda document: document[0].update(result={"rows": []})),
        ResponseError,
        r"\[0\]\.result: Input should be a valid list",
    ),
    "rows-not-objects": Case(
        "api",
        results(lambda document: document[0].update(result=[1, 2])),
        ResponseError,
        r"\[0\]\.result\[0\]: Input should be a valid dictionary",
    ),
    "result-not-an-object": Case(
        "api",
        results(lambda document: document.__setitem__(2, BY_REASON)),
        ResponseError,
        r"\[2\]: Input should be a valid dictionary",
    ),
    "result-missing": Case(
        "api",
        results(lambda document: document.pop()),
        ResponseMismatchError,
        r"missing: 'by-type'",
    ),
    "result-unexpected": Case(
        "api",
        results(lambda document: document.append({**document[0], "name": "surprise"})),
        ResponseMismatchError,
        r"unexpected: 'surprise'",
    ),
    "result-repeated": Case(
        "api",
        results(lambda document: document.append(copy.deepcopy(document[0]))),
        ResponseMismatchError,
        r"repeated: 'core-allocation'",
    ),
    "row-without-assistant-key": Case(
        "api",
        drop_key(CORE, "assistantId"),
        ResponseError,
        r"'core-allocation' row 0: no group key 'assistantId'",
    ),
    "row-without-variable-key": Case(
        "api",
        drop_key(CORE, "costCenter"),
        ResponseError,
        r"'core-allocation' row 0: no group key 'costCenter'",
    ),
    "row-without-date": Case(
        "api", drop_key(CORE, "date"), ResponseError, r"row 0: no group key 'date'"
    ),
    "row-without-ended-reason": Case(
        "api",
        drop_key(BY_REASON, "endedReason"),
        ResponseError,
        r"'by-reason-status' row 0: no group key 'endedReason'",
    ),
    "group-value-an-object": Case(
        "api",
        set_value(CORE, "assistantId", {"id": "x"}),
        ResponseError,
        r"group key 'assistantId' is a JSON object, not a plain value",
    ),
    "variable-value-an-array": Case(
        "api",
        set_value(CORE, "costCenter", ["sales"]),
        ResponseError,
        r"group key 'costCenter' is a JSON array",
    ),
    "aggregate-missing": Case(
        "api",
        drop_key(CORE, "sum_cost"),
        ResponseError,
        r"row 0\.sum_cost: missing \(sum of cost was asked for\)",
    ),
    "negative-cost": Case(
        "api",
        set_value(CORE, "sum_cost", Decimal("-0.01")),
        ResponseError,
        r"sum_cost: -0\.01 is negative",
    ),
    "negative-cost-as-string": Case(
        "api",
        set_value(CORE, "sum_cost", "-5.00"),
        ResponseError,
        r"sum_cost: -5\.00 is negative",
    ),
    "negative-component": Case(
        "api", set_value(CORE, "sum_llm", Decimal(-3)), ResponseError, r"sum_llm: -3 is negative"
    ),
    "negative-duration": Case(
        "api", set_value(BY_REASON, "sum_duration", -60), ResponseError, r"sum_duration: -60 is"
    ),
    "negative-count": Case(
        "api", set_value(CORE, "count_id", -1), ResponseError, r"count_id: -1 is negative"
    ),
    "fractional-count": Case(
        "api",
        set_value(CORE, "count_id", Decimal("1.5")),
        ResponseError,
        r"count_id: 1\.5 is not a whole count",
    ),
    "null-count": Case(
        "api", set_value(CORE, "count_id", None), ResponseError, r"null where a count belongs"
    ),
    "boolean-cost": Case(
        "api",
        set_value(CORE, "sum_cost", True),
        ResponseError,
        r"sum_cost: expected a number, not a boolean",
    ),
    "text-cost": Case(
        "api",
        set_value(CORE, "sum_cost", "twelve"),
        ResponseError,
        r"sum_cost: expected a numeric string such as '12\.34', got 'twelve'",
    ),
    "nan-string-cost": Case(
        "api", set_value(CORE, "sum_cost", "NaN"), ResponseError, r"expected a numeric string"
    ),
    "object-cost": Case(
        "api",
        set_value(CORE, "sum_cost", {"amount": 1}),
        ResponseError,
        r"expected a number or numeric string, not dict",
    ),
    "nan-literal": Case(
        "api", raw_body(first_cost_literal(b"NaN")), ResponseError, r"not JSON.*NaN is not a"
    ),
    "infinity-literal": Case(
        "api",
        raw_body(first_cost_literal(b"-Infinity")),
        ResponseError,
        r"not JSON.*-Infinity is not a",
    ),
    "truncated-every-time": Case(
        "api",
        raw_body(lambda raw: raw[: len(raw) // 2]),
        DamagedResponseError,
        r"JSON array that breaks off.*Every attempt was damaged after 3 attempts",
    ),
    "far-over-the-size-cap": Case(
        "api",
        raw_body(lambda raw: raw + b" " * (4 << 20)),
        ResponseError,
        r"body over max_response_bytes=1048576",
        {"max_response_bytes": 1 << 20},
    ),
    "date-not-a-local-midnight": Case(
        "api",
        set_value(CORE, "date", "2026-10-05T13:00:00.000Z"),
        AnalyticsResultError,
        r"not a local midnight",
    ),
    "date-outside-the-month": Case(
        "api",
        set_value(CORE, "date", "2026-09-14T22:00:00.000Z"),
        AnalyticsResultError,
        r"is outside 2026-10",
    ),
    "date-not-iso": Case(
        "api",
        set_value(CORE, "date", "yesterday"),
        AnalyticsResultError,
        r"'yesterday' is not an ISO-8601 instant",
    ),
    "org-total-disagrees": Case(
        "api",
        add_to_cost(ORG_TOTAL, amount="5.00"),
        ReconciliationError,
        r"difference -5\.00",
    ),
    "amount-too-large-for-cents": Case(
        "api",
        add_to_cost(CORE, ORG_TOTAL, amount="1e14"),
        StatementError,
        r"too large to keep its cents",
    ),
    "assistant-id-with-control-character": Case(
        "api",
        set_value(CORE, "assistantId", "asst-\u0007-bell"),
        StatementError,
        r"control character U\+0007",
    ),
}


# --- chargeback.yaml --------------------------------------------------------------------


def yaml_edit(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, f"{old!r} is not in the demo config any more; update the test"
        return text.replace(old, new, 1)

    return edit


MARKETING_OWNER = "    owner_email: marketing@example.com\n"

CONFIG_CASES: dict[str, Case] = {
    "yaml-syntax": Case(
        "config",
        yaml_edit("  name: Demo Voice Co", "  name: [Demo Voice Co"),
        ConfigError,
        r"chargeback\.yaml:\d+: YAML syntax error",
    ),
    "unknown-field": Case(
        "config",
        lambda text: text + "currancy: USD\n",
        ConfigError,
        r"currancy: unknown field",
    ),
    "cost-center-id-climbs-paths": Case(
        "config",
        yaml_edit("  - id: sales\n", "  - id: ../sales\n"),
        ConfigError,
        r"cost_centers\[0\]\.id: '\.\./sales' is not a slug",
    ),
    "cost-center-id-with-slash": Case(
        "config",
        yaml_edit("  - id: sales\n", "  - id: sales/eu\n"),
        ConfigError,
        r"'sales/eu' is not a slug",
    ),
    "cost-center-id-formula": Case(
        "config",
        yaml_edit("  - id: sales\n", "  - id: '=HYPERLINK(\"x\")'\n"),
        ConfigError,
        r"is not a slug",
    ),
    "cost-center-name-control-character": Case(
        "config",
        yaml_edit("    name: Sales\n", '    name: "Sales\\u0007"\n'),
        ConfigError,
        r"cost_centers\[0\]\.name: .*contains a control character",
    ),
    "unknown-timezone": Case(
        "config",
        yaml_edit("  timezone: Europe/Berlin", "  timezone: Europe/Atlantis"),
        ConfigError,
        r"org\.timezone: 'Europe/Atlantis' is not an IANA time zone name",
    ),
    "timezone-abbreviation": Case(
        "config",
        yaml_edit("  timezone: Europe/Berlin", "  timezone: EST"),
        ConfigError,
        r"chargeback\.yaml:\d+: org\.timezone: 'EST' is an abbreviation, not an IANA"
        r" Area/Location zone.*; use 'America/New_York'",
    ),
    "timezone-cet": Case(
        "config",
        yaml_edit("  timezone: Europe/Berlin", "  timezone: CET"),
        ConfigError,
        r"org\.timezone: 'CET' is an abbreviation.*; use 'Europe/Paris' or 'Europe/Berlin'",
    ),
    "timezone-fixed-offset": Case(
        "config",
        yaml_edit("  timezone: Europe/Berlin", "  timezone: Etc/GMT-1"),
        ConfigError,
        r"org\.timezone: 'Etc/GMT-1' is a fixed UTC offset \(POSIX sign: it means UTC\+1\)",
    ),
    "cost-center-end-not-a-date": Case(
        "config",
        yaml_edit(MARKETING_OWNER, MARKETING_OWNER + "    valid_to: end of 2026\n"),
        ConfigError,
        r"chargeback\.yaml:\d+: cost_centers\[2\]\.valid_to: 'end of 2026' is not a date",
    ),
    "cost-center-retired-but-still-mapped": Case(
        "config",
        yaml_edit(MARKETING_OWNER, MARKETING_OWNER + "    valid_to: 2026-06-30\n"),
        ConfigError,
        r"assistant_teams\.csv:5: valid_to is empty: the row charges cost center 'marketing'"
        r" after 2026-06-30, the last day it is charged .*end the row on or before 2026-06-30",
    ),
    "duplicate-cost-center": Case(
        "config",
        yaml_edit("  - id: support\n", "  - id: sales\n"),
        ConfigError,
        r"duplicate cost center id 'sales'",
    ),
    "unsupported-currency": Case(
        "config",
        yaml_edit("currency: USD", "currency: EUR"),
        ConfigError,
        r"currency: 'EUR' is not allowed",
    ),
    "variable-key-collides": Case(
        "config",
        yaml_edit("variable_key: costCenter", "variable_key: date"),
        ConfigError,
        r"variable_key: 'date' collides",
    ),
    "mapping-file-missing": Case(
        "config",
        yaml_edit("mapping: assistant_teams.csv", "mapping: nowhere.csv"),
        ConfigError,
        r"nowhere\.csv: file not found",
    ),
    "empty-file": Case("config", lambda text: "", ConfigError, r":1: expected a mapping"),
    "list-not-mapping": Case(
        "config", lambda text: "- org\n- cost_centers\n", ConfigError, r":1: expected a mapping"
    ),
    "not-utf8": Case(
        "config",
        lambda text: text.encode() + b"# caf\xe9\n",
        ConfigError,
        r"not UTF-8",
    ),
    "oversized": Case(
        "config",
        lambda text: text + "#" + "x" * (1 << 20) + "\n",
        ConfigError,
        r"larger than 1,048,576 bytes, the limit for a chargeback\.yaml",
    ),
}


# --- mapping CSV ------------------------------------------------------------------------

UNMAPPED = "6a1f3c2e-0000-4000-8000-00000000abcd"


def mapping_line(line: str) -> Callable[[str], str]:
    return lambda text: text + line + "\n"


MAPPING_CASES: dict[str, Case] = {
    "header-renamed": Case(
        "mapping",
        lambda text: text.replace("assistant_id,", "assistant,", 1),
        ConfigError,
        r"assistant_teams\.csv:1: header is",
    ),
    "unknown-cost-center": Case(
        "mapping",
        mapping_line(f"{UNMAPPED},legal-team,legal,,"),
        ConfigError,
        r"cost_center_id 'legal' is not in chargeback\.yaml",
    ),
    "cost-center-traversal": Case(
        "mapping",
        mapping_line(f"{UNMAPPED},team,../sales,,"),
        ConfigError,
        r"cost_center_id '\.\./sales' is not in chargeback\.yaml",
    ),
    "overlapping-validity": Case(
        "mapping",
        lambda text: text + text.splitlines()[1].rsplit(",", 2)[0] + ",2026-01-01,\n",
        ConfigError,
        r"overlaps line 2",
    ),
    "same-assistant-in-upper-case": Case(
        "mapping",
        lambda text: text + text.splitlines()[1].upper().replace("INBOUND-SALES,SALES", "x,sales"),
        ConfigError,
        r"assistant_teams\.csv:\d+: assistant '85527357-a2e6-4647-b03e-2fb81f223f41' .*overlaps"
        r" line 2",
    ),
    "bad-date": Case(
        "mapping",
        mapping_line(f"{UNMAPPED},team,sales,2026-13-01,"),
        ConfigError,
        r"valid_from '2026-13-01' is not a date",
    ),
    "ends-before-it-starts": Case(
        "mapping",
        mapping_line(f"{UNMAPPED},team,sales,2026-10-10,2026-10-01"),
        ConfigError,
        r"valid_to 2026-10-01 is before valid_from 2026-10-10",
    ),
    "blank-team": Case(
        "mapping", mapping_line(f"{UNMAPPED},,sales,,"), ConfigError, r"team is blank"
    ),
    "team-control-character": Case(
        "mapping",
        mapping_line(f'{UNMAPPED},"team\x07bell",sales,,'),
        ConfigError,
        r"team 'team\\x07bell' contains a control character",
    ),
    "team-too-long": Case(
        "mapping",
        mapping_line(f"{UNMAPPED},{'t' * 201},sales,,"),
        ConfigError,
        r"team is 201 characters, over 200",
    ),
    "assistant-id-with-space": Case(
        "mapping",
        mapping_line("asst 1,team,sales,,"),
        ConfigError,
        r"assistant_id 'asst 1' contains a space",
    ),
    "too-few-fields": Case(
        "mapping", mapping_line(f"{UNMAPPED},team"), ConfigError, r"2 fields; expected 5"
    ),
    "not-utf8": Case(
        "mapping",
        lambda text: text.encode() + f"{UNMAPPED},caf\xe9,sales,,\n".encode("latin-1"),
        ConfigError,
        r"assistant_teams\.csv: not UTF-8",
    ),
    "oversized": Case(
        "mapping",
        lambda text: text + ("#" * 1023 + "\n") * (32 * 1024 + 1),
        ConfigError,
        r"larger than 33,554,432 bytes, the limit for a mapping CSV",
    ),
}


# --- call records (the emulator refuses to load them, so nothing is ever served) ----------

GOOD_CALL = {"id": "call-1", "createdAt": "2026-10-01T08:00:00.000Z"}


def call_line(**fields: Any) -> Callable[[], bytes]:
    return lambda: (json.dumps(GOOD_CALL | fields) + "\n").encode()


def call_text(text: str | bytes) -> Callable[[], bytes]:
    return lambda: text if isinstance(text, bytes) else text.encode()


CALL_CASES: dict[str, Case] = {
    "not-utf8": Case(
        "calls", call_text(b'{"id":"\xff"}\n'), MalformedRecordError, r":1: not UTF-8"
    ),
    "record-null": Case(
        "calls", call_text("null\n"), MalformedRecordError, r":1: expected a JSON object"
    ),
    "record-a-string": Case(
        "calls", call_text('"call"\n'), MalformedRecordError, r":1: expected a JSON object"
    ),
    "nan-cost": Case(
        "calls",
        call_text('{"id":"c","createdAt":"2026-10-01T08:00:00.000Z","cost":NaN}\n'),
        MalformedRecordError,
        r":1: cost: expected a number, got nan",
    ),
    "cost-an-object": Case(
        "calls",
        call_line(cost={"usd": 1}),
        MalformedRecordError,
        r":1: cost: expected a number, got an object",
    ),
    "cost-not-a-number": Case(
        "calls",
        call_line(cost="abc"),
        MalformedRecordError,
        r":1: cost 'abc' is not a decimal number",
    ),
    "component-not-a-number": Case(
        "calls",
        call_line(costBreakdown={"llm": "x"}),
        MalformedRecordError,
        r"costBreakdown\.llm 'x' is not a decimal number",
    ),
    "ended-at-not-a-timestamp": Case(
        "calls",
        call_line(endedAt="later"),
        MalformedRecordError,
        r":1: endedAt 'later' is not an ISO-8601 timestamp",
    ),
    "created-at-a-number": Case(
        "calls",
        call_line(createdAt=1_790_000_000),
        MalformedRecordError,
        r"createdAt '1790000000' is not an ISO-8601 timestamp",
    ),
    "overrides-not-an-object": Case(
        "calls",
        call_line(assistantOverrides="x"),
        MalformedRecordError,
        r"assistantOverrides: expected an object",
    ),
    "array-with-trailing-text": Case(
        "calls",
        call_text(json.dumps([GOOD_CALL]) + " trailing"),
        MalformedRecordError,
        r"unexpected text after the closing '\]'",
    ),
    "array-missing-a-comma": Case(
        "calls",
        call_text(f"[{json.dumps(GOOD_CALL)}\n" + '{"id":"b"}]'),
        MalformedRecordError,
        r":2: expected ',' or '\]' after a record",
    ),
}

BAD_INPUTS = {
    f"{case.kind}-{name}": case
    for table in (CONFIG_CASES, MAPPING_CASES, CALL_CASES, API_CASES)
    for name, case in table.items()
}


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calls") / "calls.parquet"
    generate_calls_file(path, MONTH, calls_per_month=CALLS_PER_MONTH)
    return path


@pytest.fixture(scope="module")
def baseline(calls: Path, tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """A month published from good inputs: every bad run below must leave it exactly so."""
    output = tmp_path_factory.mktemp("published")
    with emulator([calls]) as api, make_client(api.base_url) as client:
        run_pipeline(output, client, run_id="baseline")
    manifest = read_published(output, MONTH)
    assert manifest is not None
    raw = (output / "_runs" / MONTH / "baseline" / "raw" / "batch-000.json").read_bytes()
    return Baseline(output, raw, snapshot(output / MONTH), manifest)


def test_the_table_holds_at_least_50_bad_inputs_of_all_four_kinds() -> None:
    kinds = {case.kind for case in BAD_INPUTS.values()}
    assert kinds == {"config", "mapping", "calls", "api"}
    assert len(BAD_INPUTS) >= 50, len(BAD_INPUTS)


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_refused_clearly_and_nothing_is_written(
    name: str, baseline: Baseline, tmp_path: Path
) -> None:
    case = BAD_INPUTS[name]
    output = copy_output(baseline.output, tmp_path / "output")
    if case.kind == "calls":
        path = tmp_path / ("calls.json" if name.startswith("calls-array") else "calls.jsonl")
        path.write_bytes(case.make())
        with pytest.raises(case.error) as caught:
            Engine([path]).load()
    else:
        config = _config_dir(tmp_path, case)
        with _client(case, baseline) as client, pytest.raises(case.error) as caught:
            run_pipeline(output, client, run_id="bad-input", config=config)
        raw_folder = output / "_runs" / MONTH / "bad-input" / "raw"
        if isinstance(caught.value, FETCH_ERRORS):
            assert not raw_folder.exists(), "a refused response must not be kept"

    assert re.search(case.message, str(caught.value)), str(caught.value)
    assert KEY not in str(caught.value)
    assert snapshot(output / MONTH) == baseline.month
    assert read_published(output, MONTH) == baseline.manifest
    assert hidden_leftovers(output) == []


def test_a_negative_call_cost_served_by_the_api_is_refused_end_to_end(
    calls: Path, baseline: Baseline, tmp_path: Path
) -> None:
    """The emulator loads a call with a negative cost (the real API could send one); the run stops at fetch."""
    refund = tmp_path / "refund.jsonl"
    record = {
        "id": "call-refund-1",
        "createdAt": "2026-10-10T09:00:00.000Z",
        "startedAt": "2026-10-10T09:00:00.000Z",
        "endedAt": "2026-10-10T09:01:00.000Z",
        "assistantId": UNMAPPED,
        "cost": -5,
    }
    refund.write_text(json.dumps(record) + "\n")
    output = copy_output(baseline.output, tmp_path / "output")

    with (
        emulator([calls, refund]) as api,
        make_client(api.base_url) as client,
        pytest.raises(ResponseError, match=r"sum_cost: -5 is negative"),
    ):
        run_pipeline(output, client, run_id="refund")

    assert not (output / "_runs" / MONTH / "refund" / "raw").exists()
    assert snapshot(output / MONTH) == baseline.month
    assert hidden_leftovers(output) == []


def _config_dir(tmp_path: Path, case: Case) -> Path:
    """A copy of the demo config and mapping, with the case's edit applied to one of them."""
    folder = tmp_path / "config"
    folder.mkdir()
    config, mapping = folder / DEMO_CONFIG.name, folder / DEMO_MAPPING.name
    shutil.copy(DEMO_CONFIG, config)
    shutil.copy(DEMO_MAPPING, mapping)
    shutil.copy(DEMO_CONFIG.with_name("fx_rates.csv"), folder)
    target = {"config": config, "mapping": mapping}.get(case.kind)
    if target is not None:
        edited = case.make(target.read_text(encoding="utf-8"))
        if isinstance(edited, bytes):
            target.write_bytes(edited)
        else:
            target.write_text(edited, encoding="utf-8")
    return config


def _client(case: Case, baseline: Baseline) -> VapiAnalyticsClient:
    """A client whose API answers with the case's response; config cases must not reach it."""

    def answer(request: httpx.Request) -> httpx.Response:
        if case.kind != "api":
            pytest.fail(f"a {case.kind} error must stop the run before any request")
        response: httpx.Response = case.make(baseline.raw)
        return response

    return VapiAnalyticsClient(
        "http://127.0.0.1:9",
        KEY,
        transport=httpx.MockTransport(answer),
        sleep=lambda seconds: None,
        max_retries=2,
        **case.client_options,
    )
