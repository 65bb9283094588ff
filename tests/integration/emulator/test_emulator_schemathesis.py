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


POSITIVE = 450
NEGATIVE = 600


def fuzz(cases: st.SearchStrategy[schemathesis.Case], count: int, base_url: str) -> Counter[int]:
    """Send ``count`` generated requests; every response checked by schemathesis as it arrives."""
    statuses: Counter[int] = Counter()
    session = requests.Session()

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def send(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, session=session, headers=AUTH)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    send()
    return statuses


@pytest.mark.slow
def test_seed_spec_fuzzing_never_errors_and_every_200_conforms(base_url: str) -> None:
    strict = schemathesis.openapi.from_dict(closed(seed_document()))["/analytics"]["POST"]
    as_shipped = schemathesis.openapi.from_dict(seed_document())["/analytics"]["POST"]
    positive = fuzz(strict.as_strategy(GenerationMode.POSITIVE, headers=AUTH), POSITIVE, base_url)
    negative = fuzz(
        as_shipped.as_strategy(GenerationMode.NEGATIVE, headers=AUTH), NEGATIVE, base_url
    )
    assert sum(positive.values()) + sum(negative.values()) >= 1_000
    assert set(positive) | set(negative) <= {200, 400}, (positive, negative)
    assert positive[200] >= 100, positive
