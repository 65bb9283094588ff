"""Which failures are worth retrying, and how long delivery waits between rounds."""

from __future__ import annotations

import smtplib

import pytest

from vapi_chargeback.delivery.send import (
    BACKOFF_CAP_SECONDS,
    PermanentSendError,
    TransientSendError,
    backoff_seconds,
    classify,
)


@pytest.mark.parametrize(
    ("error", "transient", "detail"),
    [
        pytest.param(
            smtplib.SMTPRecipientsRefused({"a@x.io": (451, b"4.3.0 try later")}),
            True,
            "a@x.io refused: 451 4.3.0 try later",
            id="rcpt-451-greylisted",
        ),
        pytest.param(
            smtplib.SMTPRecipientsRefused({"a@x.io": (550, b"5.1.1 no such\r\n user")}),
            False,
            "a@x.io refused: 550 5.1.1 no such user",
            id="rcpt-550-unknown-user",
        ),
        pytest.param(
            smtplib.SMTPRecipientsRefused({"a@x.io": (450, b"busy"), "b@x.io": (550, b"no")}),
            False,
            "a@x.io refused: 450 busy; b@x.io refused: 550 no",
            id="rcpt-mixed-is-permanent",
        ),
        pytest.param(
            smtplib.SMTPDataError(554, b"5.7.1 message rejected"),
            False,
            "554 5.7.1 message rejected",
            id="data-554",
        ),
        pytest.param(
            smtplib.SMTPSenderRefused(421, b"4.7.0 too many connections", "from@x.io"),
            True,
            "421 4.7.0 too many connections",
            id="sender-421",
        ),
        pytest.param(
            smtplib.SMTPAuthenticationError(535, b"5.7.8 bad credentials"),
            False,
            "535 5.7.8 bad credentials",
            id="auth-535",
        ),
        pytest.param(
            smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
            True,
            "connection lost: Connection unexpectedly closed",
            id="disconnected",
        ),
        pytest.param(
            ConnectionRefusedError(111, "Connection refused"),
            True,
            "ConnectionRefusedError: [Errno 111] Connection refused",
            id="connection-refused",
        ),
        pytest.param(TimeoutError("timed out"), True, "TimeoutError: timed out", id="timeout"),
        pytest.param(
            smtplib.SMTPNotSupportedError("STARTTLS extension not supported by server."),
            False,
            "server does not support what the connection asks for:"
            " STARTTLS extension not supported by server.",
            id="no-starttls",
        ),
        pytest.param(TransientSendError("later"), True, "later", id="own-transient"),
        pytest.param(PermanentSendError("never"), False, "never", id="own-permanent"),
        pytest.param(ValueError("a bug"), False, "ValueError: a bug", id="unknown-is-permanent"),
    ],
)
def test_classify(error: BaseException, transient: bool, detail: str) -> None:
    failure = classify(error)
    assert (failure.transient, failure.detail) == (transient, detail)


@pytest.mark.parametrize(
    ("base", "round_number", "wait"),
    [
        pytest.param(10, 1, 10.0, id="first-wait-is-the-base"),
        pytest.param(10, 2, 20.0, id="then-doubles"),
        pytest.param(10, 3, 40.0, id="and-doubles-again"),
        pytest.param(200, 3, BACKOFF_CAP_SECONDS, id="capped"),
        pytest.param(0, 4, 0.0, id="zero-base-never-waits"),
    ],
)
def test_backoff(base: float, round_number: int, wait: float) -> None:
    assert backoff_seconds(base, round_number) == wait
