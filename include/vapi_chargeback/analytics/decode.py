"""Response bodies to Python: JSON with every fraction a ``Decimal``, whole or a result at a time.

JSON numbers are parsed straight to ``Decimal`` (``parse_float=decimal.Decimal``): no
float ever exists on the money path. The client decodes bodies fresh off the wire with
these functions and the pipeline decodes the same bodies read back from storage, so both
accept and refuse exactly the same bytes. Nothing here needs HTTP.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from vapi_chargeback.analytics.models import AnalyticsQueryResult


def decode_json(raw: bytes) -> Any:
    """JSON with every fraction as ``Decimal``; ``NaN`` and ``Infinity`` are refused (ValueError)."""
    return json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)


def decode_fast(raw: bytes) -> Any:
    """``raw`` as :func:`decode_json` decodes it, by msgspec (a third faster) wherever it
    takes the bytes, else by :func:`decode_json` itself: for a body or span a check has
    already passed (``workfolder.StoredResults``), where msgspec and ``json`` agree."""
    if _FAST_DECODE is not None:
        try:
            return _FAST_DECODE(raw)
        except (ValueError, RecursionError):
            pass
    return decode_json(raw)


def iter_json_array(raw: bytes, *, rough: bool = False) -> Iterator[tuple[Any, int, int]]:
    """Each element of a JSON array body, decoded on its own as :func:`decode_json` would,
    with its ``[start, end)`` byte offsets in ``raw``.

    Decoded whole, a month of results is several times its bytes in Python objects; one
    element at a time, only the largest result is held. Raises ``ValueError`` for a body
    that is not UTF-8, not a JSON array, or that :func:`decode_json` would refuse.

    msgspec finds the elements and decodes each a third faster than ``json`` (the fetch
    decodes 1.9 GB for a 5M-call month), to exactly the same values: every fraction a
    ``Decimal`` of its own text, integers of any size, the last of repeated keys. It
    refuses a few bodies ``json`` takes (a byte-order mark, a lone surrogate escape):
    the array msgspec refuses is read by ``json`` from the start (:func:`_json_elements`),
    an element it refuses is decoded by ``json`` on its own, so ``json`` decides every
    refusal and every value either way.

    ``rough``: an element msgspec decodes has its fractions as ``float``, not ``Decimal``
    (a third cheaper again), for a caller that only needs their types and signs and
    decodes the element exactly (:func:`decode_element`) where that is not enough; what is
    accepted and refused, every other value, and the offsets stay the same.
    """
    spans = _msgspec_spans(raw)
    if spans is None:
        yield from _json_elements(raw)
        return
    view = memoryview(raw)
    for start, end in spans:
        yield _decode_element(view[start:end], rough), start, end


def decode_element(raw: bytes, start: int, end: int) -> Any:
    """The element at ``raw[start:end]`` as :func:`iter_json_array` decodes it (exactly)."""
    return _decode_element(memoryview(raw)[start:end])


def has_float(data: object) -> bool:
    """Whether a decoded value holds a ``float`` anywhere (a rough element's fraction)."""
    if isinstance(data, float):
        return True
    if isinstance(data, dict):
        return any(map(has_float, data.values()))
    if isinstance(data, list):
        return any(map(has_float, data))
    return False


def _msgspec_spans(raw: bytes) -> list[tuple[int, int]] | None:
    """The ``[start, end)`` byte offsets of the elements of a JSON array body, found by
    msgspec; None where msgspec is missing or refuses the body (``json`` then reads it).

    msgspec checked the separators, so between two elements there is only JSON space and
    one comma, and each element's text is as long as its ``Raw``.
    """
    if _RAW_ELEMENTS is None:
        return None
    try:
        elements = _RAW_ELEMENTS(raw)
    except (ValueError, RecursionError):
        return None
    spans: list[tuple[int, int]] = []
    position = _skip_bytes_space(raw, _skip_bytes_space(raw, 0) + 1)
    for element in elements:
        end = position + len(element)
        spans.append((position, end))
        position = _skip_bytes_space(raw, _skip_bytes_space(raw, end) + 1)
    return spans


def _decode_element(span: memoryview, rough: bool = False) -> Any:
    """One element as :func:`decode_json` decodes it: msgspec, or ``json`` where msgspec refuses
    (``rough``: msgspec's fractions are ``float``; both msgspec decoders accept the same text)."""
    fast = _ROUGH_DECODE if rough else _FAST_DECODE
    if fast is not None:
        try:
            return fast(span)
        except (ValueError, RecursionError):
            pass
    return _DECODER.decode(bytes(span).decode("utf-8"))


def _json_elements(raw: bytes) -> Iterator[tuple[Any, int, int]]:
    """:func:`iter_json_array` by ``json`` alone, offsets counted in characters then bytes."""
    text = raw.decode("utf-8")
    byte_offset = _byte_offsets(raw, text)
    position = _skip_space(text, 0)
    if not text.startswith("[", position):
        raise ValueError("the body is not a JSON array")
    position = _skip_space(text, position + 1)
    if not text.startswith("]", position):
        while True:
            item, end = _DECODER.raw_decode(text, position)
            yield item, byte_offset(position), byte_offset(end)
            position = _skip_space(text, end)
            if text.startswith(",", position):
                position = _skip_space(text, position + 1)
            elif text.startswith("]", position):
                break
            else:
                raise ValueError(f"expected ',' or ']' at character {position}")
    if _skip_space(text, position + 1) != len(text):
        raise ValueError("data after the JSON array")


def result_from_json(item: Any) -> AnalyticsQueryResult:
    """A decoded result validated like ``AnalyticsQueryResult.model_validate``, rows not copied.

    Pydantic would rebuild every row dict of a 70k-row result; rows that ``json`` decoded
    are plain dicts with string keys already, so only the envelope goes through pydantic.
    Raises ``ValueError`` (a ``ValidationError`` for the envelope) where pydantic would.
    """
    if not isinstance(item, dict):
        raise ValueError("a result must be a JSON object")
    rows = item.get("result")
    if not isinstance(rows, list) or not set(map(type, rows)) <= _DICT_ONLY:
        raise ValueError("a result's rows must be a list of JSON objects")
    envelope = AnalyticsQueryResult.model_validate({**item, "result": []})
    return envelope.model_copy(update={"result": rows})


def _byte_offsets(raw: bytes, text: str) -> Callable[[int], int]:
    """Character index → byte offset in ``raw``, for increasing indexes (identity for ASCII)."""
    if raw.isascii():
        return lambda index: index
    last = [0, 0]

    def offset(index: int) -> int:
        last[1] += len(text[last[0] : index].encode("utf-8"))
        last[0] = index
        return last[1]

    return offset


def _skip_space(text: str, position: int) -> int:
    match = _JSON_SPACE.match(text, position)
    return match.end() if match else position


def _skip_bytes_space(raw: bytes, position: int) -> int:
    match = _JSON_BYTES_SPACE.match(raw, position)
    return match.end() if match else position


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number finance can book")


_DICT_ONLY = frozenset({dict})
"""Row types a result may hold: exactly ``dict`` (a subclass would not be a decoded object)."""
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_JSON_BYTES_SPACE = re.compile(rb"[ \t\n\r]*")
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)


def _msgspec_decoders() -> tuple[
    Callable[[Any], Any] | None, Callable[[Any], Any] | None, Callable[[bytes], list[Any]] | None
]:
    """msgspec's decoders of any value (fractions as ``Decimal``, and as ``float``) and of an
    array's element texts; none where msgspec is missing (it comes with Airflow's task SDK).
    One of each serves every thread (the client posts batches from a pool): msgspec's
    decoders are thread-safe since 0.16 (msgspec#402)."""
    try:
        import msgspec
    except ImportError:  # pragma: no cover - msgspec is a dependency
        return None, None, None
    exact = msgspec.json.Decoder(float_hook=Decimal)
    rough = msgspec.json.Decoder()
    elements = msgspec.json.Decoder(list[msgspec.Raw])
    return exact.decode, rough.decode, elements.decode


_FAST_DECODE, _ROUGH_DECODE, _RAW_ELEMENTS = _msgspec_decoders()


def json_kind(data: object) -> str:
    """How a decoded value is called in JSON (``object``, ``array`` …), for messages."""
    if isinstance(data, dict):
        return "object"
    if isinstance(data, str):
        return "string"
    if data is None:
        return "null"
    if isinstance(data, list):
        return "array"
    if isinstance(data, bool):
        return "boolean"
    return "number" if isinstance(data, int | Decimal) else "value"
