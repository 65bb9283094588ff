"""The mail that tells operators a chargeback task failed for good: what failed, and why.

Built here, without Airflow, so the wording and the scrubbing are tested on their own; the
DAGs' ``on_failure_callback`` (``vapi_chargeback.airflow.failure_alerts``) fills in a
:class:`FailedTask` from the task's context and sends the result through Airflow's SMTP
notifier.

An error's text can carry what it must never send on: an API key echoed in a response
body, a connection URL with its password, an ``Authorization`` header in a logged
request. :func:`scrub` removes every secret the caller names (the connections' passwords)
and, whatever the caller knows, anything shaped like a credential — so a key nobody named
is still not mailed.

Where to send is read from chargeback.yaml (``alerts_email``, ``delivery.smtp_conn_id``,
``delivery.from_email``) by :func:`alert_route`, which also reads a config that does not
validate: a run that fails on its own config problems is the failure an operator most
needs to hear about.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vapi_chargeback.config import DeliverySettings, load_config
from vapi_chargeback.errors import ChargebackError

MASK = "***"
MAX_LINES = 40
"""Lines of the error a mail quotes: a reconciliation diff or a config's problem list fits."""
MAX_CHARS = 6000
MIN_SECRET_LENGTH = 4
"""Shorter "secrets" (an empty or placeholder password) would mask ordinary words."""
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CREDENTIAL_SHAPES = (
    # Authorization: Bearer sk-…, authorization=Basic …
    (
        re.compile(
            r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?:(bearer|basic|token)\s+)?[^\s\"',;}]+"
        ),
        lambda m: f"{m.group(1)}{(m.group(2) + ' ') if m.group(2) else ''}{MASK}",
    ),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{4,}"), lambda m: f"{m.group(1)} {MASK}"),
    # scheme://user:password@host
    (
        re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@"),
        lambda m: f"{m.group(1)}{MASK}@",
    ),
    # api_key=…, "password": "…", secret: …, token=…
    (
        re.compile(
            r"(?i)\b((?:api[_-]?key|apikey|password|passwd|secret|access[_-]?token|token)"
            r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}&]+"
        ),
        lambda m: f"{m.group(1)}{MASK}",
    ),
)


@dataclass(frozen=True)
class AlertRoute:
    """Where a failure alert goes: chargeback.yaml's ``alerts_email`` over delivery's SMTP."""

    to: str
    smtp_conn_id: str
    from_email: str | None
    subject_prefix: str


@dataclass(frozen=True)
class FailedTask:
    dag_id: str
    task_id: str
    map_index: int
    run_id: str
    month: str | None
    """The statement month (``YYYY-MM``) or the daily run's day; ``None`` before it was known."""
    try_number: int
    max_tries: int
    """Tries the task was allowed in all (its retries + 1)."""
    error: str
    """The exception as text (type and message); scrubbed before it is quoted."""
    log_url: str | None = None


@dataclass(frozen=True)
class FailureMail:
    subject: str
    html: str
    text: str


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without the named secrets and without anything shaped like a credential."""
    for secret in sorted(
        {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
    ):
        text = text.replace(secret, MASK)
    for pattern, replacement in _CREDENTIAL_SHAPES:
        text = pattern.sub(replacement, text)
    return text


def first_lines(text: str, max_lines: int = MAX_LINES, max_chars: int = MAX_CHARS) -> str:
    """The start of ``text``, saying how much was left out (the task log has the rest)."""
    lines = text.strip().splitlines()
    kept = "\n".join(lines[:max_lines])
    cut = len(lines) > max_lines
    if len(kept) > max_chars:
        kept, cut = kept[:max_chars], True
    if cut:
        kept += f"\n… ({len(lines)} lines in all; the task log has the whole error)"
    return kept


def compose(failed: FailedTask, route: AlertRoute, secrets: Iterable[str] = ()) -> FailureMail:
    """Subject and body (HTML for the notifier, plain text for logs and tests), scrubbed."""
    secrets = list(secrets)
    task = failed.task_id if failed.map_index < 0 else f"{failed.task_id}[{failed.map_index}]"
    month = failed.month or "unknown (the run failed before its month was fixed)"
    error = scrub(first_lines(failed.error), secrets)
    subject = scrub(
        f"{route.subject_prefix} FAILED {failed.dag_id} {task} {failed.month or ''}".rstrip(),
        secrets,
    )
    facts = [
        ("DAG", failed.dag_id),
        ("Task", task),
        ("Month", month),
        ("Run", failed.run_id),
        (
            "Try",
            f"{failed.try_number} of up to {failed.max_tries}: failed for good, no retry follows",
        ),
    ]
    if failed.log_url:
        facts.append(("Log", failed.log_url))
    facts = [(name, scrub(value, secrets)) for name, value in facts]
    text = "\n".join(f"{name}: {value}" for name, value in facts) + f"\n\nError:\n{error}\n"
    rows = "".join(
        f"<tr><th align='left'>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
        for name, value in facts
    )
    body = (
        f"<p>A task of <b>{html.escape(failed.dag_id)}</b> failed and will not be retried.</p>"
        f"<table>{rows}</table><p>Error:</p><pre>{html.escape(error)}</pre>"
        "<p>Fix the cause, then clear the task (or trigger the month again).</p>"
    )
    return FailureMail(subject=subject, html=body, text=text)


def alert_route(config_path: Path) -> AlertRoute | None:
    """``alerts_email`` and delivery's SMTP settings from chargeback.yaml; ``None`` when unset.

    A config that does not validate is read leniently for just these keys, so its own
    problems can still be mailed; a file that cannot be read at all yields ``None``.
    """
    try:
        config = load_config(config_path)
    except (ChargebackError, OSError):
        return _lenient_route(config_path)
    if config.alerts_email is None:
        return None
    return AlertRoute(
        to=config.alerts_email,
        smtp_conn_id=config.delivery.smtp_conn_id,
        from_email=config.delivery.from_email,
        subject_prefix=config.delivery.subject_prefix,
    )


def _lenient_route(config_path: Path) -> AlertRoute | None:
    try:
        document: Any = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(document, dict):
        return None
    to = document.get("alerts_email")
    if not isinstance(to, str) or not _EMAIL.match(to):
        return None
    delivery = document.get("delivery")
    delivery = delivery if isinstance(delivery, dict) else {}
    defaults = DeliverySettings()

    def text(key: str, default: str | None) -> str | None:
        value = delivery.get(key)
        return value if isinstance(value, str) and value.strip() else default

    return AlertRoute(
        to=to,
        smtp_conn_id=text("smtp_conn_id", defaults.smtp_conn_id) or defaults.smtp_conn_id,
        from_email=text("from_email", None),
        subject_prefix=text("subject_prefix", defaults.subject_prefix) or defaults.subject_prefix,
    )
