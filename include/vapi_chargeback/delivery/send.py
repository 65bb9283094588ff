"""The seam to the mail server: a ``Sender`` hands one message over, errors say whether to retry.

Delivery never talks SMTP itself, so the core runs unchanged with Airflow's SMTP hook
(``vapi_chargeback.airflow.delivery``), with a test double, or with anything else that
can hand over an ``EmailMessage``. What it needs to know about a failure is one bit:
could the same message succeed if tried again in a little while? SMTP says so in the
reply code — 4xx is temporary (greylisting, mailbox busy, "try again later"), 5xx is
permanent (no such user, message refused) — and a dropped connection or a timeout is
temporary too.
"""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from vapi_chargeback.errors import ChargebackError, PermanentError

BACKOFF_CAP_SECONDS = 300.0
"""No single wait between rounds is longer than this, whatever the configured base."""


class Sender(Protocol):
    """Hands one message to a mail server for the given envelope; raises when it is not accepted."""

    def send(self, message: EmailMessage, *, envelope_from: str, recipients: Sequence[str]) -> None:
        """Return once the server has accepted the message for every recipient."""


class SendError(ChargebackError):
    """A message was not accepted; ``transient`` says whether trying again may help."""

    transient = False


class TransientSendError(SendError):
    transient = True


class PermanentSendError(SendError, PermanentError):
    transient = False


@dataclass(frozen=True)
class Failure:
    transient: bool
    detail: str
    """One line for the log and the report: the SMTP code and text, or the error."""


def classify(error: BaseException) -> Failure:
    """Whether ``error`` is worth retrying, and how to report it.

    Unknown exceptions count as permanent: retrying a bug in a loop only delays the
    report, and the task's own retries still try again later.
    """
    if isinstance(error, SendError):
        return Failure(error.transient, str(error))
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        detail = "; ".join(
            f"{address} refused: {code} {_text(reply)}"
            for address, (code, reply) in error.recipients.items()
        )
        return Failure(bool(codes) and all(_temporary(code) for code in codes), detail)
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return Failure(True, f"connection lost: {error}")
    if isinstance(error, smtplib.SMTPResponseException):
        return Failure(
            _temporary(error.smtp_code) or error.smtp_code < 0,
            f"{error.smtp_code} {_text(error.smtp_error)}",
        )
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return Failure(False, f"server does not support what the connection asks for: {error}")
    if isinstance(error, (TimeoutError, ConnectionError, OSError)):
        return Failure(True, f"{type(error).__name__}: {error}")
    return Failure(False, f"{type(error).__name__}: {error}")


def backoff_seconds(base: float, round_number: int) -> float:
    """Wait after round ``round_number`` (1-based): ``base``, then doubling, capped."""
    return float(min(base * 2 ** (round_number - 1), BACKOFF_CAP_SECONDS))


def _temporary(code: int) -> bool:
    return 400 <= code < 500


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())
