"""The ``deliver`` task's Airflow side: params, the SMTP connection, and a ``Sender`` over ``SmtpHook``.

The SMTP provider's hook owns the connection — host, port, login, SSL or STARTTLS and the
certificate check (``disable_ssl``, ``disable_tls``, ``ssl_context`` extras), OAuth2 —
so the ``smtp_default`` connection works exactly as it does for Airflow's own mails.
The hook's ``send_email_smtp`` is not used: it builds its own HTML-only MIME message
from files on disk and retries every error, permanent ones included, without a pause.
Delivery needs its own Message-ID on each message (for at-most-once across retries)
and its own retry policy per recipient, so this sender hands the composed message to
the hook's connected client and leaves the decision to retry to the core.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from airflow.providers.smtp.hooks.smtp import SmtpHook
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowNotFoundException,
    AirflowSkipException,
)

from vapi_chargeback.airflow.settings import storage_path
from vapi_chargeback.config import DeliverySettings, load_config
from vapi_chargeback.delivery import (
    DeliverySetupError,
    MonthIsDraftError,
    TransientSendError,
    deliver_month,
)
from vapi_chargeback.pipeline import RunInfo

log = logging.getLogger(__name__)


class SmtpHookSender:
    """A :class:`~vapi_chargeback.delivery.Sender` over the SMTP provider's hook.

    Connects on the first message, not before: a month with nothing left to send never
    touches the server. After any failure the connection is dropped and the next
    message opens a new one, so a server that hung up mid-session is retried cleanly.
    """

    def __init__(self, smtp_conn_id: str) -> None:
        self.smtp_conn_id = smtp_conn_id
        self._connected: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpHookSender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def send(self, message: EmailMessage, *, envelope_from: str, recipients: Sequence[str]) -> None:
        client = self._client()
        try:
            client.send_message(message, from_addr=envelope_from, to_addrs=list(recipients))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        client, self._connected = self._connected, None
        if client is None:
            return
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()

    def _client(self) -> smtplib.SMTP:
        if self._connected is None:
            self._connected = hook_client(self.smtp_conn_id)
        return self._connected


def hook_client(smtp_conn_id: str) -> smtplib.SMTP:
    """The SMTP client ``SmtpHook`` opened and logged in: TLS, certificates and OAuth2 are its job.

    The provider (3.2) has no public accessor for it — ``get_conn()`` returns the hook, and
    its public ``send_email_smtp`` builds its own message — so this is the one place that
    reads the hook's ``_smtp_client``, as the provider's own ``test_connection`` does; the
    SMTP integration tests fail here first if a provider release renames it.
    """
    hook = SmtpHook(smtp_conn_id=smtp_conn_id)
    try:
        hook.get_conn()
    except AirflowException as error:
        # The hook reports "Unable to connect" after its own connect retries as a
        # generic AirflowException; for delivery that is a temporary failure.
        raise TransientSendError(f"cannot connect with {smtp_conn_id}: {error}") from error
    client = hook._smtp_client
    if not isinstance(client, smtplib.SMTP):
        raise TypeError(f"SmtpHook gave {type(client).__name__}, expected an smtplib client")
    return client


def smtp_from_email(smtp_conn_id: str) -> str | None:
    """The connection's ``from_email`` extra; ``None`` when the connection is not defined."""
    try:
        connection = BaseHook.get_connection(smtp_conn_id)
    except AirflowNotFoundException:
        return None
    value = connection.extra_dejson.get("from_email")
    return str(value) if value else ""


def smtp_from_address(settings: DeliverySettings, *, unsent: str, to_send: str, what: str) -> str:
    """The from-address for ``what``: ``delivery.from_email``, else the connection's extra.

    Skips the task when the connection does not exist (``unsent`` says what happened
    instead, ``to_send`` what defining it allows); fails for good when it exists but
    names no from-address.
    """
    connection_from = smtp_from_email(settings.smtp_conn_id)
    if connection_from is None:
        raise AirflowSkipException(
            f"no Airflow connection {settings.smtp_conn_id!r}: {unsent}. Define the"
            f" connection (conn type smtp) to {to_send}."
        )
    from_address = settings.from_email or connection_from
    if not from_address:
        raise DeliverySetupError(
            f"no from-address for {what}: set delivery.from_email in chargeback.yaml or the"
            f" extra 'from_email' of connection {settings.smtp_conn_id!r}"
        )
    return from_address


def deliver_task(context: Any, run: dict[str, Any]) -> dict[str, Any]:
    """Body of the DAG's ``deliver`` task: skip when asked, unconfigured or a draft, else deliver.

    Skips (rather than fails) when the ``deliver`` param is false or the SMTP connection
    does not exist, so a deployment without mail still runs green and says why in the log;
    and when the month is still a draft (rejected, timed out, not reviewed) and
    ``deliver_drafts`` is off: a draft is not mailed, and that is the run's expected end.
    A missing from-address with a defined connection is a configuration error and fails
    for good (``DeliverySetupError``, a ``PermanentError``), as does a delivery whose only
    failures are permanent refusals (``DeliveryRefusedError``). With ``redeliver`` the
    task's tries share one run id, so its retries send only what this run has not sent.
    """
    params = context["params"]
    if not params.get("deliver", True):
        raise AirflowSkipException("param deliver=false: statements published, not e-mailed")
    info = RunInfo.model_validate(run)
    config = load_config(Path(info.config_path))
    settings = config.delivery
    from_address = smtp_from_address(
        settings,
        unsent="statements published, not e-mailed",
        to_send="deliver them",
        what="delivery",
    )
    with SmtpHookSender(settings.smtp_conn_id) as sender:
        try:
            report = deliver_month(
                storage_path(info.output_url),
                info.month,
                config,
                sender,
                from_address=from_address,
                run_id=info.run_id,
                force=bool(params.get("redeliver", False)),
            )
        except MonthIsDraftError as draft:
            log.info("%s stays a draft: nothing mailed", info.month)
            raise AirflowSkipException(f"{draft}. Nothing was mailed.") from draft
    log.info(
        "%s: sent %s; already delivered %s",
        info.month,
        report.sent or "nothing",
        report.skipped or "nothing",
    )
    return report.model_dump(mode="json")
