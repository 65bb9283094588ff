"""Statement numbers finance can cite: ``{prefix}-{YYYY-MM}-{cost_center_id|ORG}-v{N}``.

An id is built from the prefix, the month, the cost center and the version only, never
from a run id, a time or a hash, so rerunning a month over unchanged inputs gives the
same ids, and a restatement (version N+1) gives new ones while the old stay citable.
Lines of ``UNALLOCATED`` (and any cost center without a statement of its own in that
month) cite the org statement, the one that carries every line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from vapi_chargeback.errors import PermanentError
from vapi_chargeback.period import parse_month

DEFAULT_PREFIX = "VAPI"
ORG = "ORG"
"""The id part of the org-wide statement (cost-center ids are lower-case slugs, so no clash)."""
MAX_PREFIX_LENGTH = 16
PREFIX_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_][A-Za-z0-9]+)*")
"""Letters and digits, ``-``/``_`` only between them: the id reaches file names, mail
subjects and ledger references, where spaces, slashes or dots would break a citation."""


class StatementPrefixError(PermanentError, ValueError):
    """The configured ``statement_prefix`` cannot start a statement id."""


def validate_prefix(prefix: str) -> str:
    """``prefix`` when it can start a statement id; else why not and what to write."""
    if len(prefix) > MAX_PREFIX_LENGTH or not PREFIX_PATTERN.fullmatch(prefix):
        raise StatementPrefixError(
            f"statement_prefix {prefix!r} cannot start a statement id: use 1-{MAX_PREFIX_LENGTH}"
            " letters and digits starting with a letter, '-' or '_' only between them"
            f" (e.g. {DEFAULT_PREFIX!r} or 'ACME-VAPI')"
        )
    return prefix


def statement_id(prefix: str, period: str, cost_center_id: str | None, version: int) -> str:
    """The id of one statement; ``cost_center_id`` ``None`` (or ``ORG``) is the org statement."""
    validate_prefix(prefix)
    parse_month(period)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version {version!r} is not a whole number >= 1")
    if cost_center_id is not None and not cost_center_id:
        raise ValueError("cost_center_id is empty; pass None for the org statement")
    return f"{prefix}-{period}-{cost_center_id or ORG}-v{version}"


@dataclass(frozen=True)
class StatementIds:
    """The ids of one month at one version: the org's and one per cost center."""

    prefix: str
    period: str
    version: int
    org: str
    by_cost_center: dict[str, str] = field(default_factory=dict)
    """Cost-center id → its statement id, in the order given."""

    def for_cost_center(self, cost_center_id: str) -> str:
        """The id a line of ``cost_center_id`` cites: its own statement, else the org's.

        ``UNALLOCATED`` and cost centers that had no statement in this month (a fixed
        mapping may name one only later) have no statement of their own.
        """
        return self.by_cost_center.get(cost_center_id, self.org)

    def manifest_block(self) -> dict[str, object]:
        """The manifest's ``statement_ids``: ``{"org": …, "cost_centers": {id: …}}``."""
        return {"org": self.org, "cost_centers": dict(self.by_cost_center)}


def statement_ids(
    prefix: str, period: str, cost_center_ids: Iterable[str], version: int
) -> StatementIds:
    """The ids of ``period`` at ``version`` for the org and each of ``cost_center_ids``."""
    org = statement_id(prefix, period, None, version)
    by_center: dict[str, str] = {}
    for center in cost_center_ids:
        if center == ORG:
            raise ValueError(f"cost center id {ORG!r} is reserved for the org statement")
        by_center[center] = statement_id(prefix, period, center, version)
    return StatementIds(prefix, period, version, org, by_center)
