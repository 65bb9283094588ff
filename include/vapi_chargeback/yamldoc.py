"""YAML as people write it: exact numbers, and the line of every value.

A config is read to be checked, so each problem must name the line to fix: the document
is composed to nodes first, which keep their positions, and every value's line is
indexed by its field path (``("cost_centers", 1, "id")``). Numbers with a fraction are
read as ``Decimal`` straight from their text, so a money amount never passes through a
float; a repeated key, which YAML would silently keep only the last of, is reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal, InvalidOperation

import yaml

from vapi_chargeback.analytics.models import field_path

Loc = tuple[int | str, ...]
"""A field path: mapping keys and sequence indexes from the document's root."""


class _DecimalLoader(yaml.SafeLoader):
    """SafeLoader that reads YAML floats as ``Decimal`` from their source text."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")
    lowered = text.lower()
    if lowered in (".inf", "+.inf", "-.inf", ".nan"):
        return Decimal("NaN")
    try:
        return Decimal(text)
    except InvalidOperation:
        return Decimal("NaN")


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def read_yaml(text: str) -> tuple[yaml.Node | None, object]:
    """The single document of ``text`` as its node tree and its data (``None`` for none).

    Raises ``yaml.YAMLError`` (with ``problem_mark`` where the parser knows the place).
    """
    loader = _DecimalLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return node, data


def index_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> Iterator[tuple[int, str]]:
    """Record the 1-based line of every value by its field path; yield duplicate keys."""
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                yield (
                    line,
                    f"{field_path((*loc, key))}: key repeated (first on line {seen[key]}); YAML keeps only the last, remove one",
                )
            seen[key] = line
            yield from index_lines(value_node, (*loc, key), lines)
            lines[(*loc, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from index_lines(item, (*loc, index), lines)
