"""The project's error policy: one base, and one marker for what a retry cannot fix.

Airflow retries a failed task by default; that helps when the API or the storage was
briefly away and only wastes minutes (and mails, and API calls) when the input itself is
wrong. Every error vapi-chargeback raises on purpose derives from :class:`ChargebackError`;
those that no retry can fix — a bad config or mapping, a refused request, a month that
cannot run yet, a statement that does not reconcile — also derive from
:class:`PermanentError`. The Airflow adapter (``vapi_chargeback.airflow.steps``) turns a
``PermanentError`` into Airflow's non-retryable failure and lets everything else retry.
"""

from __future__ import annotations


class ChargebackError(Exception):
    """Base of every error vapi-chargeback raises on purpose."""


class PermanentError(ChargebackError):
    """An error that the same run would hit again: fix the input, then rerun.

    Used as a second base (``class ConfigError(PermanentError)``, or beside a domain base
    as in ``class BadRequestError(VapiAnalyticsError, PermanentError)``), so callers can
    still catch by domain.
    """
