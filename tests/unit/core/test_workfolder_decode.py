"""Trusted bodies are decoded by msgspec into exactly what ``decode_json`` makes.

``analytics.decode.decode_fast`` (in ``workfolder.StoredResults``) only ever sees bytes the
fetch decoded and checked; it must give the same Python values — types, ``Decimal`` digits and exponents, key order, the last
of repeated keys — and hand any body msgspec refuses to ``decode_json``.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vapi_chargeback.analytics import decode
from vapi_chargeback.analytics.decode import decode_fast, decode_json

from support.decoded_values import same_values

BODIES = [
    b'[{"name":"q","result":[{"costSum":1.10,"calls":3,"assistantId":"a"}]}]',
    b"[1.0E+2, -0, -0.0, 1e-7, 0.1e1, 1E400, 1.5e-400, 123.4560]",
    b"[12345678901234567890123, -9223372036854775809, 18446744073709551616]",
    b'{"a": 1, "b": 2, "a": 3}',
    b'[" \\u00e9\\n\\"\\\\\\/", "\xc3\xa9", null, true, false, {}, []]',
    b" \n[ 1 , 2.50 ]\t",
    b"\xef\xbb\xbf[1.5]",  # a byte-order mark: json accepts it, msgspec does not
    '[1.5, "x"]'.encode("utf-16"),
    b'["\\ud800"]',  # a lone surrogate
]


@pytest.mark.parametrize("raw", BODIES)
def test_a_trusted_body_decodes_to_the_values_decode_json_makes(raw: bytes) -> None:
    assert same_values(decode_fast(raw), decode_json(raw))


def test_without_msgspec_decode_json_does_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode, "_FAST_DECODE", None)
    for raw in BODIES:
        assert same_values(decode_fast(raw), decode_json(raw))


def test_msgspec_is_what_decodes_a_trusted_utf8_body() -> None:
    assert decode._FAST_DECODE is not None, "msgspec comes with Airflow"


_numbers = st.decimals(allow_nan=False, allow_infinity=False).map(str) | st.integers().map(str)
_scalars = _numbers | st.sampled_from(["null", "true", "false", '"x"', '"\\u00e9"'])
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]")
        | st.lists(st.tuples(st.sampled_from("abc"), inner), max_size=4).map(
            lambda pairs: "{" + ",".join(f'"{key}":{value}' for key, value in pairs) + "}"
        )
    ),
    max_leaves=12,
)


@given(_json)
def test_any_json_of_numbers_decodes_the_same(text: str) -> None:
    raw = text.encode()
    assert same_values(decode_fast(raw), decode_json(raw))
