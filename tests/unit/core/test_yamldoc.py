"""The config's YAML composed by libyaml is the YAML the pure-Python composer made: the same
nodes on the same lines and the same data, and a document libyaml refuses still fails with
the pure-Python parser's own words and place."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from vapi_chargeback import yamldoc
from vapi_chargeback.config import ConfigError, load_config

from support.core_fixtures import DEMO_CONFIG


@pytest.fixture(autouse=True)
def _libyaml() -> None:
    """These tests compare libyaml's reading with the pure-Python one: without libyaml they
    skip locally, loudly, and fail under CI (the PyYAML wheels CI installs have it)."""
    if yamldoc._FastLoader is None:
        message = "PyYAML was built without libyaml: the fast YAML path was NOT tested"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


BENCH = Path(__file__).parents[3] / "bench"

DOCUMENTS = {
    "plain": "org:\n  name: Acme\n  timezone: Europe/Berlin\ncurrency: USD\n",
    "crlf": "org:\r\n  name: Acme\r\ncost_centers:\r\n- id: a\r\n  amount: 1.50\r\n",
    "cr only": "org:\r  name: Acme\rb: 2\r",
    "line separators": "a: 'x\u2028y'\nb: 1\x85c: 2\u2028d: 3\ne: x\u2029\n  y\n",
    "comments and blanks": "# head\n\norg:   # trailing\n\n\n  name: A # c\n\nx: [1, 2]\n",
    "flow": "a: {b: 1, c: [x, y, {d: 2.50}]}\ne: [ ]\nf: { }\n",
    "block scalars": "a: |\n  one\n  two\nb: >-\n  folded\n  text\nc: |+\n  kept\n\nd: 1\n",
    "quoted": "a: 'it''s'\nb: \"tab\\tand \\u00e9\"\nc: \"multi\n  line\"\nd: plain\n  continued\n",
    "anchors": "base: &b {x: 1.0}\nuse: *b\nmerge:\n  <<: *b\n  y: 2\n",
    "indentless": "cost_centers:\n- id: a\n  queries:\n  - id: q\n    metrics: [calls]\n- id: b\n",
    "duplicates": "a: 1\nb: 2\na: 3\nn:\n  k: 1\n  k: 2\n",
    "numbers": "a: 1_000.50\nb: .inf\nc: -.NaN\nd: 0x1f\ne: 1e3\nf: 012\ng: +5\nh: 2026-10-01\n",
    "document markers": "%YAML 1.1\n---\na: 1\n...\n",
    "empty": "",
    "comment only": "# nothing\n",
    "null root": "~\n",
    "unicode": "name: Café – Zürich ✓ 🎧\nowner: jürgen@example.com\n",
    "tags": "a: !!str 12\nb: !!float 3\nc: !!int '7'\n",
    "bom text": "\ufeffa: 1\n",
    "long keys": "? complex key\n: value\n",
}

BROKEN = {
    "unclosed flow": "org: [unclosed\n",
    "bad indent": "org:\n  name: A\n bad: 1\n",
    "tab indent": "org:\n\tname: A\n",
    "two documents": "a: 1\n---\nb: 2\n",
    "mapping in plain": "a: b: c\n",
    "unknown alias": "a: *nope\n",
    "unclosed quote": "a: 'open\nb: 2\n",
    "control character": "a: \x07\n",
    "bad escape": 'a: "\\q"\n',
    "unknown tag": "a: !python/object x\n",
    "bad timestamp": "a: 2026-13-45\n",
    "undefined directive": "%YAML 2.0\n---\na: 1\n",
    # libyaml would read these two; the Python scanner refuses them, so read_yaml must too.
    "tab inside a value": "org:\n  name: Mark\tting\n",
    "question mark in a flow": "components: [va?i]\n",
}


def _shape(node: yaml.Node | None) -> Any:
    """Everything of a node tree that the config reads: kinds, tags, values, lines, styles."""
    if node is None:
        return None
    head = (type(node).__name__, node.tag, node.start_mark.line, node.start_mark.column)
    if isinstance(node, yaml.ScalarNode):
        return (*head, node.value, node.style or "")  # plain: None in Python, "" in libyaml
    if isinstance(node, yaml.MappingNode):
        return (*head, [(_shape(key), _shape(value)) for key, value in node.value])
    return (*head, [_shape(item) for item in node.value])


def _both(text: str) -> tuple[Any, Any]:
    """(libyaml's node tree and data, or None where it refuses the text; Python's)."""
    try:
        fast = yamldoc._read(yamldoc._FastLoader, text)  # type: ignore[arg-type]
    except yaml.YAMLError:
        fast = None
    return fast, yamldoc._read(yamldoc._DecimalLoader, text)


def _corpus() -> dict[str, str]:
    texts = dict(DOCUMENTS)
    texts["demo config"] = DEMO_CONFIG.read_text(encoding="utf-8")
    return texts


@pytest.mark.parametrize("name", sorted(_corpus()))
def test_libyaml_composes_the_same_nodes_and_data(name: str) -> None:
    """libyaml reads each of these texts, and reads what the Python composer does."""
    text = _corpus()[name]

    fast, (slow_node, slow_data) = _both(text)
    node, data = yamldoc.read_yaml(text)

    assert fast is not None
    assert _shape(node) == _shape(slow_node)
    assert repr(data) == repr(slow_data)
    assert _shape(fast[0]) == _shape(slow_node)
    assert repr(fast[1]) == repr(slow_data)
    lines: dict[yamldoc.Loc, int] = {}
    lines_slow: dict[yamldoc.Loc, int] = {}
    if node is not None:
        assert list(yamldoc.index_lines(node, (), lines)) == list(
            yamldoc.index_lines(slow_node, (), lines_slow)  # type: ignore[arg-type]
        )
    assert lines == lines_slow


def test_a_bench_org_config_composes_the_same(tmp_path: Path) -> None:
    """The generated 400-cost-center config whose loading this speeds up."""
    import argparse

    sys.path.insert(0, str(BENCH))
    try:
        from pipeline_org import write_org
    finally:
        sys.path.remove(str(BENCH))
    args = argparse.Namespace(
        seed=7, cost_centers=60, definitions=3, assistants=50, month="2026-10"
    )
    path, _ = write_org(tmp_path, args)

    text = path.read_text(encoding="utf-8")
    fast, (slow_node, slow_data) = _both(text)

    assert fast is not None
    assert not any(char in text for char in yamldoc._LIBYAML_DIFFERS)
    assert _shape(fast[0]) == _shape(slow_node)
    assert repr(fast[1]) == repr(slow_data)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_refused_document_fails_as_the_python_parser_words_it(name: str) -> None:
    text = BROKEN[name]
    with pytest.raises(Exception) as expected:
        yamldoc._read(yamldoc._DecimalLoader, text)

    with pytest.raises(type(expected.value)) as got:
        yamldoc.read_yaml(text)

    assert str(got.value) == str(expected.value)


def test_a_syntax_error_names_the_python_parsers_line(tmp_path: Path) -> None:
    path = tmp_path / "chargeback.yaml"
    path.write_text("org:\n  name: A\ncost_centers: [a,\n  b\nx: 1\n", encoding="utf-8")
    with pytest.raises(Exception) as expected:
        yamldoc._read(yamldoc._DecimalLoader, path.read_text(encoding="utf-8"))
    mark = expected.value.problem_mark  # type: ignore[attr-defined]

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert f"{path}:{mark.line + 1}: YAML syntax error" in str(error.value)
