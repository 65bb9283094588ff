"""The stream decodes with msgspec where it can, and must accept, refuse and decode exactly
what the ``json`` path does: same elements (types, ``Decimal`` digits and exponents, key
order, the last of repeated keys), same byte spans, a ``ValueError`` for the same bodies.

Bodies are generated as JSON text with the awkward corners (exponents, ``-0``, big ints,
escapes, lone surrogates, repeated keys, odd whitespace, non-ASCII), then also damaged a
byte at a time, so refusals are compared too.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vapi_chargeback.analytics import decode
from vapi_chargeback.analytics.decode import _json_elements, decode_json, iter_json_array

from support.decoded_values import same_values


def _outcome(decoder: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return "ok", list(decoder(raw))
    except ValueError:
        return "refused", None


def _assert_same_outcome(raw: bytes) -> None:
    fast, slow = _outcome(iter_json_array, raw), _outcome(_json_elements, raw)
    assert fast[0] == slow[0], raw
    if fast[0] == "ok":
        assert len(fast[1]) == len(slow[1])
        for (item, start, end), (expected, e_start, e_end) in zip(fast[1], slow[1], strict=True):
            assert (start, end) == (e_start, e_end), raw
            assert same_values(item, expected), raw


SPACE = st.text(alphabet=" \t\n\r", max_size=2)
NUMBERS = st.one_of(
    st.from_regex(r"\A-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,12})?([eE][+-]?[0-9]{1,4})?\Z"),
    st.sampled_from(
        ["-0", "-0.0", "0.10", "1E+400", "1e-400", "18446744073709551616", "-9223372036854775809"]
    ),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "01", "1.", ".5", "+1", "1e", "-"]),
)
STRINGS = st.one_of(
    st.text(max_size=8).map(lambda text: json.dumps(text, ensure_ascii=False)),
    st.text(max_size=8).map(json.dumps),
    st.sampled_from(['"\\ud800"', '"\\udc00x"', '"\\/"', '"a\\u0000"', '"\\U0041"', '"\x7f"']),
)
SCALARS = st.one_of(NUMBERS, STRINGS, st.sampled_from(["true", "false", "null"]))


def _joined(draw: Any, parts: list[str], opening: str, closing: str) -> str:
    sep = [draw(SPACE) + "," + draw(SPACE) for _ in parts]
    inner = "".join(part + (sep[i] if i < len(parts) - 1 else "") for i, part in enumerate(parts))
    return opening + draw(SPACE) + inner + draw(SPACE) + closing


@st.composite
def _values(draw: Any, depth: int = 2) -> str:
    if depth == 0 or draw(st.booleans()):
        return str(draw(SCALARS))
    if draw(st.booleans()):
        return _joined(draw, draw(st.lists(_values(depth - 1), max_size=3)), "[", "]")
    keys = draw(st.lists(st.sampled_from(['"a"', '"b"', '"c"', '"é"', '"a\\u0301"']), max_size=4))
    members = [key + draw(SPACE) + ":" + draw(SPACE) + draw(_values(depth - 1)) for key in keys]
    return _joined(draw, members, "{", "}")


@st.composite
def _bodies(draw: Any) -> bytes:
    text = _joined(draw, draw(st.lists(_values(), max_size=4)), "[", "]")
    return (draw(SPACE) + text + draw(SPACE)).encode("utf-8")


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(_bodies())
def test_generated_bodies_stream_alike(raw: bytes) -> None:
    _assert_same_outcome(raw)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(_bodies(), st.integers(min_value=0), st.binary(min_size=1, max_size=2), st.booleans())
def test_damaged_bodies_are_refused_or_accepted_alike(
    raw: bytes, at: int, bytes_in: bytes, replace: bool
) -> None:
    position = at % (len(raw) + 1)
    damaged = raw[:position] + bytes_in + raw[position + (len(bytes_in) if replace else 0) :]
    _assert_same_outcome(damaged)


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b" [ ] ",
        b"\xef\xbb\xbf[1.5]",
        '[1.5, "x"]'.encode("utf-16"),
        b'[{"a": 1, "b": 2, "a": 3}, "\\ud800", 1E400, -0, -0.0]',
        b"[1]\x0c",
        b'["\xff"]',
        b'["\xed\xa0\x80"]',
        b"[1,]",
        b"{}",
        b"[" * 3000 + b"]" * 3000,
        '[{"x":"Küche ✓"}, 12345678901234567890123]'.encode(),
    ],
)
def test_corner_bodies_stream_alike(raw: bytes) -> None:
    try:
        _assert_same_outcome(raw)
    except RecursionError:
        with pytest.raises(RecursionError):
            list(_json_elements(raw))


def test_msgspec_decodes_a_plain_body(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = b'[{"a":1.50},[2]]'
    calls: list[bytes] = []
    fast = decode._FAST_DECODE
    assert fast is not None

    def counted(span: Any) -> Any:
        calls.append(bytes(span))
        return fast(span)

    monkeypatch.setattr(decode, "_FAST_DECODE", counted)
    assert [item for item, _, _ in iter_json_array(raw)] == decode_json(raw)
    assert calls == [b'{"a":1.50}', b"[2]"]


def test_without_msgspec_json_does_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode, "_FAST_DECODE", None)
    monkeypatch.setattr(decode, "_RAW_ELEMENTS", None)
    raw = b' [{"a":1.50} , "\\ud800"]'
    assert [(item, s, e) for item, s, e in iter_json_array(raw)] == list(_json_elements(raw))
