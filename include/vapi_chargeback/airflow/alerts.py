"""The daily DAG's ``alerts`` task: the day's month-to-date figures in, budget alerts out.

Through delivery's own SMTP side (``airflow.delivery``): the same connection
(``delivery.smtp_conn_id``), the same from-address rule (``delivery.from_email``, else the
connection's ``from_email`` extra) and the same ``SmtpHookSender``, which connects only
when there is something to send. Like ``deliver``, the task is *skipped* — not failed —
when the config has no budgets or the SMTP connection does not exist, so a deployment
without mail still runs green and says why; a defined connection without a from-address
is a configuration error (``DeliverySetupError``, permanent).

Parsing the DAG imports this module: everything heavy is imported inside the function.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from vapi_chargeback.airflow.steps import failure_policy
from vapi_chargeback.errors import ChargebackError

log = logging.getLogger(__name__)


class MtdMissingError(ChargebackError):
    """The figures the publish task wrote are not there (replaced or deleted since).

    Not permanent: the usual cause is a rerun of the same day replacing them, which a
    retry outlives.
    """


@failure_policy
def alerts(run: dict[str, Any], published: dict[str, Any]) -> dict[str, Any]:
    """Mail each cost center's new budget alerts of the day (``budgets.alerts``)."""
    from vapi_chargeback.airflow.delivery import SmtpHookSender, smtp_from_address
    from vapi_chargeback.airflow.settings import storage_path
    from vapi_chargeback.budgets.alerts import send_alerts
    from vapi_chargeback.budgets.outputs import read_mtd
    from vapi_chargeback.budgets.run import MtdRun
    from vapi_chargeback.config import load_config

    info = MtdRun.model_validate(run)
    config = load_config(Path(info.config_path))
    if not config.budgets:
        raise AirflowSkipException("no budgets: in chargeback.yaml: nothing to alert on")
    settings = config.delivery
    from_address = smtp_from_address(
        settings,
        unsent="month to date published, no budget alerts mailed",
        to_send="send them",
        what="budget alerts",
    )
    output = storage_path(info.output_url)
    through_day = date.fromisoformat(published["through_day"])
    report = read_mtd(output, through_day)
    if report is None:
        raise MtdMissingError(
            f"no month-to-date figures through {through_day} under {info.output_url}; the"
            " publish task wrote them, so they were replaced or removed since: retry"
        )
    with SmtpHookSender(settings.smtp_conn_id) as sender:
        result = send_alerts(
            output, report, config, sender, from_address=from_address, run_id=info.run_id
        )
    log.info(
        "%s through %s: alerts sent %s; already sent %s",
        report.period,
        through_day,
        result.sent or "none",
        result.skipped or "none",
    )
    return result.model_dump(mode="json")
