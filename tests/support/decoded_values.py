"""Comparing decoded JSON values strictly: the msgspec paths must build what ``json`` builds."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def same_values(left: Any, right: Any) -> bool:
    """Equal values of the same types, dict keys in the same order, ``Decimal`` digit for
    digit (``Decimal("1.0") == Decimal("1.00")`` would hide a changed exponent)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(same_values(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same_values, left, right))
    if isinstance(left, Decimal):
        return left.as_tuple() == right.as_tuple()
    return bool(left == right)
