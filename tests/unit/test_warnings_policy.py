"""Deprecations are not hidden: one that our code triggers fails the test (pyproject's filterwarnings)."""

from __future__ import annotations

import warnings

import pytest

OURS = [
    "vapi_chargeback.pipeline",
    "vapi_chargeback.airflow.hook",
    "vapi_emulator.engine",
    "unusual_prefix_0123abcd_vapi_chargeback_monthly",
    "vapi_chargeback_plugin",
    "test_dag_integrity",
    "conftest",
    "support.reliability",
    "emulator_pandas_reference",
]


@pytest.mark.parametrize("module", OURS)
@pytest.mark.parametrize("category", [DeprecationWarning, FutureWarning])
def test_a_deprecated_api_called_from_our_code_fails(module: str, category: type[Warning]) -> None:
    with pytest.raises(category):
        warnings.warn_explicit("old API", category, "caller.py", 1, module=module)


@pytest.mark.parametrize("module", ["pandas.core.frame", "botocore.client", "airflow.models.dag"])
def test_a_deprecation_inside_a_library_is_reported_not_raised(module: str) -> None:
    with pytest.warns(DeprecationWarning, match="old API"):
        warnings.warn_explicit("old API", DeprecationWarning, "library.py", 1, module=module)


def test_airflows_deprecated_import_in_our_module_fails() -> None:
    """The real thing: a legacy Airflow import (``airflow.decorators``) from a module of ours."""
    import airflow.decorators

    airflow.decorators.__dict__.pop("task", None)  # not cached: the module's __getattr__ warns
    code = compile("from airflow.decorators import task", "vapi_chargeback/probe.py", "exec")
    with pytest.raises(FutureWarning, match=r"airflow\.sdk"):
        exec(code, {"__name__": "vapi_chargeback.probe"})
