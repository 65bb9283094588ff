"""Registers vapi-chargeback's Airflow extensions; the logic lives in ``vapi_chargeback.airflow``.

- The statement-month and daily timetables: the scheduler only deserializes timetables that
  a plugin registers, so they must be listed here even though the DAGs import them.
- The "Chargeback statements" page (Browse menu): a FastAPI app mounted on the api-server
  at ``/chargeback/`` and shown inside the Airflow UI as an external view. Every process
  loads plugins — schedulers and workers too, for the timetable — so the app is built
  only when the api-server asks for ``fastapi_apps``; nothing else imports FastAPI or
  the page for it.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from airflow.plugins_manager import AirflowPlugin

from vapi_chargeback.airflow.daily_timetable import DailyTimetable
from vapi_chargeback.airflow.timetable import StatementMonthTimetable

PROJECT_DIR = Path(__file__).resolve().parent.parent
URL_PREFIX = "/chargeback"


def _base_path() -> str:
    """The path of ``[api] base_url``, so the page's link works behind a proxy prefix."""
    from airflow.configuration import conf

    return urlsplit(conf.get("api", "base_url", fallback="") or "/").path.rstrip("/")


class VapiChargebackPlugin(AirflowPlugin):
    name = "vapi_chargeback"
    timetables = [StatementMonthTimetable, DailyTimetable]

    @cached_property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        from vapi_chargeback.airflow.statements_page import create_app

        return [
            {
                "app": create_app(PROJECT_DIR),
                "url_prefix": URL_PREFIX,
                "name": "Chargeback statements",
            }
        ]

    @property
    def external_views(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [
            {
                "name": "Chargeback statements",
                "href": f"{_base_path()}{URL_PREFIX}/",
                "url_route": "chargeback-statements",
                "destination": "nav",
                "category": "browse",
            }
        ]
