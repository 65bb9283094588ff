"""schemathesis against the seed spec: over 1,000 generated requests, none answered with a
status >= 500, and every 200 body valid against the spec's response schema.

The spec is read from ``include/vapi_chargeback/analytics/openapi.yml``. Its request
objects do not say ``additionalProperties: false``, yet the real NestJS service rejects
unknown properties (``forbidNonWhitelisted``), so random extra keys would turn nearly
every "positive" case into a 400 and leave the 200 path untested. The positive half
therefore uses a copy whose request objects are closed; the negative half uses the spec
exactly as shipped.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from vapi_emulator.server import run_emulator

ROOT = Path(__file__).resolve().parents[3]
SEED = ROOT / "include" / "vapi_chargeback" / "analytics" / "openapi.yml"
FIXTURE = ROOT / "tests" / "fixtures" / "calls_edge_cases.jsonl"
KEY = "schemathesis-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
REQUESTS = 1_050
REQUEST_OBJECTS = (
    "AnalyticsQueryDTO",
    "AnalyticsQuery",
    "AnalyticsOperation",
    "TimeRange",
    "VariableValueGroupBy",
)


def seed_document() -> dict[str, Any]:
    return yaml.safe_load(SEED.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def closed(document: dict[str, Any]) -> dict[str, Any]:
    """The spec with its request objects closed to unknown properties, as NestJS validates."""
    document = copy.deepcopy(document)
    for name in REQUEST_OBJECTS:
        document["components"]["schemas"][name]["additionalProperties"] = False
    return document


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with run_emulator([FIXTURE], api_key=KEY) as url:
        yield url


@pytest.mark.slow
def test_seed_spec_fuzzing_never_errors_and_every_200_conforms(base_url: str) -> None:
    as_shipped = schemathesis.openapi.from_dict(seed_document())["/analytics"]["POST"]
    strict = schemathesis.openapi.from_dict(closed(seed_document()))["/analytics"]["POST"]
    cases = st.one_of(
        strict.as_strategy(GenerationMode.POSITIVE, headers=AUTH),
        as_shipped.as_strategy(GenerationMode.NEGATIVE, headers=AUTH),
    )
    statuses: Counter[tuple[str, int]] = Counter()
    session = requests.Session()

    @settings(
        max_examples=REQUESTS,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, session=session, headers=AUTH)
        mode = case.meta.generation.mode.value if case.meta else "unknown"
        statuses[(mode, response.status_code)] += 1
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    fuzz()
    total = sum(statuses.values())
    assert total >= 1_000, statuses
    assert all(status < 500 for _, status in statuses), statuses
    assert statuses[("positive", 200)] >= 100, statuses
    assert {status for _, status in statuses} <= {200, 400}, statuses
