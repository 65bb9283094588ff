"""The emulator's own OpenAPI document describes ``POST /analytics`` as the seed spec does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from vapi_emulator.app import create_app
from vapi_emulator.engine import Engine

SEED = (
    Path(__file__).resolve().parents[3]
    / "include"
    / "vapi_chargeback"
    / "analytics"
    / "openapi.yml"
)


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        *_, name = schema["$ref"].split("/")
        schema = document["components"]["schemas"][name]
    return schema


def canonical(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    """What a schema accepts, without titles, descriptions or how optionality is spelled."""
    schema = resolve(document, schema)
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return canonical(document, schema["allOf"][0])
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option.get("type") != "null"]
        assert len(options) == 1, schema
        return canonical(document, options[0])
    if "enum" in schema and schema.get("type", "string") == "string":
        return {"enum": sorted(schema["enum"])}
    if schema.get("type") == "array":
        return {"array": canonical(document, schema["items"])}
    if schema.get("type") == "object" or "properties" in schema:
        return {
            "properties": {
                name: canonical(document, value)
                for name, value in schema.get("properties", {}).items()
            },
            "required": sorted(schema.get("required", [])),
        }
    return {key: schema[key] for key in ("type", "format", "maxLength") if key in schema}


@pytest.fixture(scope="module")
def documents() -> tuple[dict[str, Any], dict[str, Any]]:
    seed = yaml.safe_load(SEED.read_text(encoding="utf-8"))
    app = create_app(Engine([]), api_key="k")
    return seed, app.openapi()


def request_schema(document: dict[str, Any]) -> dict[str, Any]:
    body = document["paths"]["/analytics"]["post"]["requestBody"]
    return body["content"]["application/json"]["schema"]  # type: ignore[no-any-return]


def test_request_body_accepts_exactly_what_the_seed_spec_describes(
    documents: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    seed, ours = documents
    assert canonical(ours, request_schema(ours)) == canonical(seed, request_schema(seed))


def test_operation_identity_and_security(documents: tuple[dict[str, Any], dict[str, Any]]) -> None:
    seed, ours = documents
    seed_post, our_post = seed["paths"]["/analytics"]["post"], ours["paths"]["/analytics"]["post"]
    assert our_post["operationId"] == seed_post["operationId"] == "AnalyticsController_query"
    assert our_post["security"] == seed_post["security"] == [{"bearer": []}]
    assert ours["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "422" not in our_post["responses"]


def test_success_response_lists_results_with_the_seed_fields(
    documents: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    seed, ours = documents

    def result_item(document: dict[str, Any]) -> dict[str, Any]:
        schema = document["paths"]["/analytics"]["post"]["responses"]["200"]["content"]
        array = resolve(document, schema["application/json"]["schema"])
        return resolve(document, array["items"])

    seed_item, our_item = result_item(seed), result_item(ours)
    assert set(our_item["properties"]) == set(seed_item["properties"])
    assert sorted(our_item["required"]) == sorted(seed_item["required"])
