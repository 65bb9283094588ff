"""Every exception class of the core derives from ``ChargebackError``.

The Airflow adapter and the command line decide what to do with an error by its base
(``PermanentError``: fail at once; any other ``ChargebackError``: retry; anything else:
a bug). A class deriving from plain ``Exception`` or ``ValueError`` escapes that policy,
so every class defined in any module of ``vapi_chargeback`` is checked here, private
ones included.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import vapi_chargeback
from vapi_chargeback.errors import ChargebackError, PermanentError


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(vapi_chargeback.__path__, "vapi_chargeback."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_exception_class_derives_from_chargeback_error() -> None:
    classes = _exception_classes()

    outside = sorted(
        f"{name} (bases: {', '.join(base.__name__ for base in cls.__bases__)})"
        for name, cls in classes.items()
        if not issubclass(cls, ChargebackError)
    )

    assert len(classes) > 30, "the walk found too few exception classes: did an import fail?"
    assert not outside, "derive these from ChargebackError (or PermanentError):\n" + "\n".join(
        outside
    )


def test_a_bad_number_in_a_response_is_permanent() -> None:
    """A stored response reads the same on every retry, so retrying cannot fix it."""
    from vapi_chargeback.analytics.numbers import InvalidNumberError

    assert issubclass(InvalidNumberError, PermanentError)
