"""Registers vapi-chargeback's Airflow extensions; the logic lives in ``vapi_chargeback.airflow``.

The scheduler only deserializes timetables that a plugin registers, so the statement-month
timetable must be listed here even though the DAG imports it from the package.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from vapi_chargeback.airflow.timetable import StatementMonthTimetable


class VapiChargebackPlugin(AirflowPlugin):
    name = "vapi_chargeback"
    timetables = [StatementMonthTimetable]
