"""The DAG's ``settled`` sensor: a scheduled run waits here until its month has settled.

The timetable creates a month's run as soon as the month has ended everywhere; whether its
calls are final is ``settlement_delay_hours`` in chargeback.yaml, counted from the month's
end in the org zone. That setting has one source, the config, and the config is read only
at run time — on every check, so a changed delay counts at the next one — never when the
DAG is parsed. Manual runs do not wait: someone asked for the month now, and ``plan``
refuses an unsettled month at once, saying when it will be ready.

A sensor class of our own rather than ``@task.sensor``: that decorator imports the
standard provider's ``PythonSensor``, which logs a deprecation warning on every parse.

Parsing the DAG imports this module, so the pipeline is imported inside, at run time only.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from airflow.sdk import BaseSensorOperator

from vapi_chargeback.airflow.steps import failure_policy

log = logging.getLogger(__name__)

POKE_INTERVAL = timedelta(minutes=10)
"""How often a waiting run checks again; in reschedule mode no worker slot is held between."""
MAX_WAIT = timedelta(days=31, hours=1)
"""The sensor's timeout. A run is created when its month has ended in UTC−12, the last zone,
so it waits at most the delay itself: at most 31 days, the config's limit (an hour spare)."""


@failure_policy
def month_settled(context: Any, project_dir: Path) -> bool:
    """True once the run's month has settled, and at once for a manual run."""
    if context["dag_run"].run_type == "manual":
        return True
    from vapi_chargeback.airflow.settings import config_file, run_month
    from vapi_chargeback.pipeline import settlement_pending

    config, month = config_file(project_dir), run_month(context)
    ready_at = settlement_pending(config, month, now=datetime.now(UTC))
    if ready_at is not None:
        log.info(
            "%s settles at %s UTC (settlement_delay_hours in %s); checking again in %s",
            month,
            f"{ready_at.astimezone(UTC):%Y-%m-%d %H:%M}",
            config,
            POKE_INTERVAL,
        )
    return ready_at is None


class RescheduleSensor(BaseSensorOperator):
    """A check of the project's config until it is true; reschedule mode, so waiting holds
    no worker. A subclass sets its default interval and timeout and pokes its check."""

    default_poke_interval: ClassVar[timedelta]
    default_timeout: ClassVar[timedelta]

    def __init__(self, *, project_dir: Path, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", self.default_poke_interval)
        kwargs.setdefault("timeout", self.default_timeout)
        super().__init__(**kwargs)
        self.project_dir = project_dir


class SettlementSensor(RescheduleSensor):
    """Succeeds once the run's month has settled."""

    default_poke_interval = POKE_INTERVAL
    default_timeout = MAX_WAIT

    def poke(self, context: Any) -> bool:
        return month_settled(context, self.project_dir)
