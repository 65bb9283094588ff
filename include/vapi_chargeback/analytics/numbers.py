"""Numbers from analytics results, as ``Decimal`` and ``int``, never ``float``.

The real API computes aggregates in Postgres and serialises them through Node, so a
``sum`` of ``cost`` may arrive as ``12.3456`` or as ``"12.3456"`` and a ``count`` as
``42`` or ``"42"``. The client parses JSON numbers straight to ``Decimal``; these
helpers accept exactly the shapes that can legitimately arrive and refuse the rest
loudly, because a silently coerced ``True`` or ``NaN`` would end up as money on a
statement that finance books.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from vapi_chargeback.errors import PermanentError

_NUMERIC = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
"""A plain decimal literal: what Postgres numerics and bigints look like as text."""


class InvalidNumberError(PermanentError):
    """A value that should be a number is not one; names the field it came from.

    Permanent: the value comes from a response already received (or stored), which reads
    the same on every retry of the step.
    """

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{field}: {reason}, got {_show(value)}")


def to_decimal(value: object, *, field: str) -> Decimal | None:
    """A result value as an exact ``Decimal``; ``None`` stays ``None`` (e.g. ``avg`` of no calls).

    ``float`` is refused rather than converted: a float here means some code parsed JSON
    without ``parse_float=Decimal`` and already lost the exact value.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidNumberError(field, value, "expected a number, not a boolean")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidNumberError(field, value, "expected a finite number")
        return value
    if isinstance(value, float):
        raise InvalidNumberError(
            field,
            value,
            "expected an exact number, not a float (parse JSON with parse_float=decimal.Decimal)",
        )
    if isinstance(value, str):
        if not _NUMERIC.fullmatch(value):
            raise InvalidNumberError(field, value, "expected a numeric string such as '12.34'")
        try:
            return Decimal(value)
        except InvalidOperation as error:
            raise InvalidNumberError(field, value, "expected a numeric string") from error
    raise InvalidNumberError(
        field, value, f"expected a number or numeric string, not {type(value).__name__}"
    )


def to_int(value: object, *, field: str) -> int | None:
    """A result value that must be whole (``count``, token and character totals) as ``int``."""
    number = to_decimal(value, field=field)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise InvalidNumberError(field, value, "expected a whole number")
    return int(number)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
