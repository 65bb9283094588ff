"""YAML as people write it: exact numbers, and the line of every value.

A config is read to be checked, so each problem must name the line to fix: the document
is composed to nodes first, which keep their positions, and every value's line is
indexed by its field path (``("cost_centers", 1, "id")``). Numbers with a fraction are
read as ``Decimal`` straight from their text, so a money amount never passes through a
float; a repeated key, which YAML would silently keep only the last of, is reported.

The document is composed by libyaml (PyYAML's C parser) where it is installed: the
pure-Python composer took 0.7 s of a 400-cost-center config, libyaml 0.1 s, and every
step of a run reads the config again. The Python composer stays the judge: a document
libyaml refuses is composed again in Python, so a syntax error is worded and placed
exactly as before, and a text with a character the two treat differently
(:data:`_LIBYAML_DIFFERS`) goes to Python straight away. Otherwise both build the same
nodes on the same lines (``tests/unit/core/test_yamldoc.py``; thousands of randomly
damaged configs agreed).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from vapi_chargeback.analytics.models import field_path

Loc = tuple[int | str, ...]
"""A field path: mapping keys and sequence indexes from the document's root."""


class _DecimalLoader(yaml.SafeLoader):
    """SafeLoader that reads YAML floats as ``Decimal`` from their source text."""


_FastLoader: type[Any] | None = None
if getattr(yaml, "__with_libyaml__", False):

    class _CDecimalLoader(yaml.CSafeLoader):
        """:class:`_DecimalLoader` over libyaml's parser: the same nodes, several times faster."""

    _FastLoader = _CDecimalLoader

_LIBYAML_DIFFERS = ("\t", "?", "\ufeff")
"""Characters libyaml reads otherwise than the Python composer: it accepts a tab inside a
plain scalar and ``?`` inside a flow collection, which the Python scanner refuses, and
counts columns past a U+FEFF differently. Texts holding one are composed in Python."""


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
if _FastLoader is not None:
    _FastLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def read_yaml(text: str) -> tuple[yaml.Node | None, object]:
    """The single document of ``text`` as its node tree and its data (``None`` for none).

    Raises ``yaml.YAMLError`` (with ``problem_mark`` where the parser knows the place).
    """
    if _FastLoader is not None and not any(char in text for char in _LIBYAML_DIFFERS):
        try:
            return _read(_FastLoader, text)
        except Exception:  # the Python composer decides, and words the problem
            pass
    return _read(_DecimalLoader, text)


def _read(loader_class: type[Any], text: str) -> tuple[yaml.Node | None, object]:
    loader = loader_class(text)
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
