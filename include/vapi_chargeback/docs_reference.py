"""The configuration reference page, generated from the pydantic models of ``chargeback.yaml``.

The reference must not drift from what :func:`vapi_chargeback.config.load_config` accepts,
so it is not written by hand: every field of :class:`ChargebackConfig` and of the models it
nests is found by walking the live models, its type, bounds and default are read from their
JSON Schema (``model_json_schema``: the one editors check the file with), and its sentence
is the attribute docstring beside it in the code. Prose that is longer than a docstring
(examples, interactions between fields) lives in a notes file keyed by field path
(``docs/hooks/config_notes.md``) and is placed under its field; a note naming no field is an
error, so a renamed field cannot leave its note behind.

The site builds the page at build time (``docs/hooks/config_reference.py``), and
``python -m vapi_chargeback.docs_reference [NOTES]`` prints it.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import sys
import textwrap
import types
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from vapi_chargeback.config import EMAIL_PATTERN, SLUG_PATTERN, ChargebackConfig
from vapi_chargeback.errors import ChargebackError

ROOT_MODEL: type[BaseModel] = ChargebackConfig
NOTE_HEADING = re.compile(r"^## `([^`]+)`\s*$", re.M)
KNOWN_PATTERNS = {
    EMAIL_PATTERN: "e-mail address",
    SLUG_PATTERN: "slug: 1-40 of `a-z`, `0-9`, `-`, not starting with `-`",
}
"""Patterns people read better as words."""
RST_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
RST_LITERAL = re.compile(r"``(.+?)``", re.S)


@dataclass(frozen=True)
class FieldDoc:
    """One key of ``chargeback.yaml`` as the reference shows it."""

    path: str
    """``cost_centers[].queries[].id``: ``[]`` is an item of a list, ``<key>`` a map's key."""
    kind: str
    required: bool
    default: str | None
    description: str
    model: str
    """Name of the model the field belongs to, for the section it is listed under."""

    @property
    def anchor(self) -> str:
        """A stable HTML id: ``cost_centers-queries-id``, so other pages can link a field."""
        return re.sub(r"[^a-z0-9_]+", "-", self.path.lower()).strip("-")


class NotesError(ChargebackError):
    """The notes file names a field the models do not have."""


def config_fields(model: type[BaseModel] = ROOT_MODEL, prefix: str = "") -> list[FieldDoc]:
    """Every field of ``model`` and the models it nests, depth first in declaration order."""
    docstrings = _attribute_docstrings(model)
    properties = model.model_json_schema().get("properties", {})
    fields: list[FieldDoc] = []
    for name, info in model.model_fields.items():
        key = info.alias or name
        path = f"{prefix}{key}"
        schema = properties.get(key, {})
        nested = _nested_models(info.annotation)
        fields.append(
            FieldDoc(
                path=path,
                kind=_kind(schema, model.model_json_schema().get("$defs", {})),
                required=info.is_required(),
                default=None
                if info.is_required()
                else _default(info.get_default(call_default_factory=True)),
                description=_markdown(docstrings.get(name, "")),
                model=model.__name__,
            )
        )
        for suffix, child in nested:
            fields += config_fields(child, f"{path}{suffix}.")
    return fields


def _nested_models(annotation: Any) -> list[tuple[str, type[BaseModel]]]:
    """The models inside a field's type, with how their keys continue the path."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("", annotation)]
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (list, tuple, set, frozenset):
        return [("[]" + suffix, child) for arg in args for suffix, child in _nested_models(arg)]
    if origin is dict and len(args) == 2:
        return [(".<key>" + suffix, child) for suffix, child in _nested_models(args[1])]
    if origin in (Union, types.UnionType) or args:
        return [found for arg in args for found in _nested_models(arg)]
    return []


@cache
def _attribute_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """The string literal under each annotated attribute of the class body (PEP 257 style)."""
    found: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(cls))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0]
        if not isinstance(body, ast.ClassDef):
            continue
        statements = body.body
        for statement, following in pairwise(statements):
            if (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                found[statement.target.id] = inspect.cleandoc(following.value.value)
    return found


def _kind(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    """A short reading of a JSON Schema: ``integer 0–744``, ``list of `day` | `week` ``."""
    if "$ref" in schema:
        return "object (its keys follow)"
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option.get("type") != "null"]
        kinds = list(dict.fromkeys(_kind(option, defs) for option in options))
        text = " or ".join(kinds)
        return f"{text}, or null" if len(options) < len(schema["anyOf"]) else text
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items", {})
        if "$ref" in items:
            return "list of objects (their keys follow)"
        return f"list of {_kind(items, defs)}"
    if kind == "object":
        values = schema.get("additionalProperties")
        if isinstance(values, dict):
            return f"map of key → {_kind(values, defs)}"
        return "object"
    if kind == "string":
        return _string_kind(schema)
    if kind in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        word = "decimal" if kind == "number" else "integer"
        if low is not None and high is not None:
            return f"{word} {low}–{high}"
        if low is not None:
            return f"{word} ≥ {low}"
        if high is not None:
            return f"{word} ≤ {high}"
        return word
    if kind == "boolean":
        return "boolean"
    return "any"


def _string_kind(schema: dict[str, Any]) -> str:
    if schema.get("format") == "date":
        return "date `YYYY-MM-DD`"
    if schema.get("pattern") in KNOWN_PATTERNS:
        return KNOWN_PATTERNS[schema["pattern"]]
    if "pattern" in schema:
        return f"string matching `{schema['pattern']}`"
    low, high = schema.get("minLength"), schema.get("maxLength")
    if high is not None:
        return f"string, {low or 0}–{high} characters"
    if low:
        return "non-empty string"
    return "string"


def _markdown(docstring: str) -> str:
    """reStructuredText literals and roles of a docstring as Markdown code spans."""
    return RST_LITERAL.sub(r"`\1`", RST_ROLE.sub(r"`\1`", docstring))


def _default(value: Any) -> str | None:
    """The default as YAML would spell it; ``None`` when a nested block has its own defaults."""
    if isinstance(value, BaseModel):
        return None
    if value is None:
        return "`null`"
    if value is PydanticUndefined:
        return None
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (list, tuple, dict)):
        return f"`{json.dumps(value, default=str)}`"
    return f"`{value}`"


def read_notes(text: str) -> tuple[str, dict[str, str]]:
    """The notes file: an introduction, then ``## `path` `` sections of prose per field."""
    parts = NOTE_HEADING.split(text)
    intro, notes = parts[0].strip(), {}
    for path, body in zip(parts[1::2], parts[2::2], strict=True):
        if path in notes:
            raise NotesError(f"notes name `{path}` twice; merge the two sections")
        notes[path] = body.strip()
    return intro, notes


def render_reference(notes_text: str = "") -> str:
    """The whole page, in Markdown; raises ``NotesError`` for a note about no field."""
    intro, notes = read_notes(notes_text)
    fields = config_fields()
    unknown = sorted(set(notes) - {field.path for field in fields})
    if unknown:
        raise NotesError(
            "the configuration notes name fields the models do not have: "
            + ", ".join(unknown)
            + "; rename or remove those sections of docs/hooks/config_notes.md"
        )
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated from the pydantic models by vapi_chargeback.docs_reference;"
        " edit the models' docstrings or docs/hooks/config_notes.md, not this page. -->",
        "",
    ]
    if intro:
        lines += [intro, ""]
    for field in fields:
        lines += _render_field(field, notes.get(field.path, ""))
    return "\n".join(lines).rstrip() + "\n"


def _render_field(field: FieldDoc, note: str) -> list[str]:
    facts = [field.kind, "required" if field.required else "optional"]
    if field.default is not None:
        facts.append(f"default {field.default}")
    level = "##" if field.path.isidentifier() else "###"
    heading = f"{level} `{field.path}` {{#{field.anchor}}}"
    lines = [heading, "", "*" + " · ".join(facts) + "*", ""]
    if field.description:
        lines += [field.description, ""]
    if note:
        lines += [note, ""]
    return lines


def main(argv: list[str] | None = None) -> None:
    """``python -m vapi_chargeback.docs_reference [docs/hooks/config_notes.md]``."""
    args = sys.argv[1:] if argv is None else argv
    notes = Path(args[0]).read_text(encoding="utf-8") if args else ""
    print(render_reference(notes), end="")


if __name__ == "__main__":
    main()
