"""Registers the ``vapi`` connection type with Airflow, the way provider packages do.

Airflow finds providers through the ``apache_airflow_provider`` entry point of installed
distributions (``pyproject.toml`` points it here). The form behaviour is declared here
as data, not only on the hook, because Airflow ≥ 3.2 renders connection forms from the
provider info without importing hooks and warns about hooks that still define it.
This module imports no Airflow and nothing heavy: every Airflow process loads it.
"""

from __future__ import annotations

from typing import Any

from vapi_chargeback import __version__

PACKAGE_NAME = "vapi-chargeback"
CONNECTION_TYPE = "vapi"
HOOK_NAME = "Vapi Analytics"
HOOK_CLASS_NAME = "vapi_chargeback.airflow.hook.VapiAnalyticsHook"
DEFAULT_BASE_URL = "https://api.vapi.ai"

HIDDEN_FIELDS = ["schema", "port", "login", "extra"]
RELABELING = {"host": "API base URL", "password": "API key"}
PLACEHOLDERS = {"host": DEFAULT_BASE_URL, "password": "private API key of the Vapi org"}


def get_provider_info() -> dict[str, Any]:
    """The provider dict Airflow's ProvidersManager validates and registers."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "Vapi Chargeback",
        "description": "Vapi Analytics API connection and hook for monthly chargeback statements.",
        "versions": [__version__],
        "connection-types": [
            {
                "hook-class-name": HOOK_CLASS_NAME,
                "connection-type": CONNECTION_TYPE,
                "hook-name": HOOK_NAME,
                "ui-field-behaviour": {
                    "hidden-fields": list(HIDDEN_FIELDS),
                    "relabeling": dict(RELABELING),
                    "placeholders": dict(PLACEHOLDERS),
                },
            }
        ],
    }
