"""The chargeback DAGs' ``on_failure_callback``: one mail to ``alerts_email`` per failed task.

Airflow calls ``on_failure_callback`` only when a task ends *failed* — a try with retries
left ends ``up_for_retry`` and calls ``on_retry_callback`` instead — so a task that fails,
is retried and then succeeds mails nobody, and one that fails for good mails once, at its
last try (a permanent error's first try: ``steps.failure_policy`` forbids its retries).

The mail is composed by the Airflow-free :mod:`vapi_chargeback.failure_mail` and sent by
the SMTP provider's ``SmtpNotifier`` over delivery's connection (``delivery.smtp_conn_id``;
from-address ``delivery.from_email``, else the connection's ``from_email`` extra). The
notifier's ``notify`` is called directly rather than through ``__call__``: that would
render the subject and body as Jinja templates, and an error's text is data, not a
template — ``{{ conn.vapi_default.password }}`` in an error must stay text.

Every password of the connections a run uses (the Vapi API's, SMTP's, the output
storage's) is scrubbed from the mail, besides anything credential-shaped. A callback
failure never changes the task's outcome: it is logged and the task stays failed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PLAN_TASK = "plan"
CONFIG_VARIABLE = "vapi_chargeback_config"
DEFAULT_CONFIG = Path("include/config/chargeback.yaml")
VAPI_CONN_ID = "vapi_default"
"""``VapiAnalyticsHook.default_conn_name``, named here for the reason ``_config_file`` gives."""
SECRET_EXTRAS = ("password", "secret", "token", "key", "aws_secret_access_key")


class FailureAlert:
    """``on_failure_callback`` of every task of a chargeback DAG (set in ``default_args``)."""

    def __init__(self, project_dir: Path) -> None:
        self.project_dir = project_dir

    def __call__(self, context: Any) -> None:
        try:
            self._alert(context)
        except Exception:
            log.exception("the failure alert could not be sent; the task's failure stands")

    def _alert(self, context: Any) -> None:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        from vapi_chargeback.failure_mail import alert_route, compose

        route = alert_route(self._config_file())
        if route is None:
            log.info("no alerts_email in chargeback.yaml: the failure is not mailed")
            return
        failed = failed_task(context)
        mail = compose(failed, route, secrets=list(known_secrets(route.smtp_conn_id, context)))
        notifier = SmtpNotifier(
            to=route.to,
            from_email=route.from_email,
            subject=mail.subject,
            html_content=mail.html,
            smtp_conn_id=route.smtp_conn_id,
        )
        notifier.notify(context)
        log.info("failure of %s mailed to %s", failed.task_id, route.to)

    def _config_file(self) -> Path:
        """``settings.config_file`` without importing ``settings``: that imports the pipeline,
        and a pipeline that no longer imports (a broken deployment) is a failure to mail too."""
        from airflow.sdk import Variable

        config = Path(Variable.get(CONFIG_VARIABLE, default=None) or DEFAULT_CONFIG)
        return config if config.is_absolute() else self.project_dir / config


def failed_task(context: Any) -> Any:
    """The failed task as :class:`~vapi_chargeback.failure_mail.FailedTask`."""
    from vapi_chargeback.failure_mail import FailedTask

    ti = context["ti"]
    error = context.get("exception")
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    return FailedTask(
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        map_index=_map_index(ti),
        run_id=ti.run_id,
        month=run_month(context),
        try_number=int(ti.try_number),
        max_tries=int(ti.max_tries) + 1,
        error=text or "no error text",
        log_url=_log_url(ti),
    )


def run_month(context: Any) -> str | None:
    """The month the plan task fixed, else what the params or the data interval say."""
    planned: Any = None
    try:
        planned = context["ti"].xcom_pull(task_ids=PLAN_TASK)
    except Exception:
        log.warning("could not read the plan task's result", exc_info=True)
    if isinstance(planned, dict) and planned.get("month"):
        through = planned.get("through_day")
        return f"{planned['month']} (through {through})" if through else str(planned["month"])
    params = context.get("params") or {}
    if params.get("month"):
        return str(params["month"])
    if params.get("day"):
        return f"{str(params['day'])[:7]} (day {params['day']})"
    from vapi_chargeback.period import month_of_interval

    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None or end is None:
        return None
    try:
        return month_of_interval(start, end)
    except ValueError:
        return f"{start:%Y-%m-%d}"


def known_secrets(smtp_conn_id: str, context: Any) -> Iterator[str]:
    """Passwords and secret extras of the connections a chargeback run uses."""
    from airflow.sdk import BaseHook

    conn_ids = {VAPI_CONN_ID, smtp_conn_id, *_storage_conn_ids(context)}
    for conn_id in sorted(conn_ids):
        try:
            connection = BaseHook.get_connection(conn_id)
        except Exception:
            continue
        if connection.password:
            yield str(connection.password)
        for name, value in (connection.extra_dejson or {}).items():
            if isinstance(value, str) and any(word in name.lower() for word in SECRET_EXTRAS):
                yield value


def _storage_conn_ids(context: Any) -> Iterator[str]:
    """``conn_id`` of an ``s3://conn_id@bucket`` output the plan recorded."""
    try:
        planned = context["ti"].xcom_pull(task_ids=PLAN_TASK)
    except Exception:
        return
    url = planned.get("output_url") if isinstance(planned, dict) else None
    if isinstance(url, str) and "://" in url:
        authority = url.split("://", 1)[1].split("/", 1)[0]
        if "@" in authority:
            yield authority.split("@", 1)[0]


def _map_index(ti: Any) -> int:
    index = getattr(ti, "map_index", None)
    return -1 if index is None else int(index)


def _log_url(ti: Any) -> str | None:
    try:
        return str(ti.log_url)
    except Exception:
        return None
