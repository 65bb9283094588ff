"""The previous calendar month as published, for this month's month-over-month drivers.

A statement compares itself with what the previous month's readers were given: the
current version in ``{output}/{YYYY-MM}/`` (draft or final, a restatement's latest
version), read back from its CSV held to its verified manifest, never recomputed. So a
rerun over unchanged inputs reads the same lines and writes the same bytes, and a
restatement of the previous month shows in this month's next draft (the sheet names the
statement id, with its version, that it compared with). A final month is compared with
its booked lines only (``close.publish``), so a later restatement of the month before
never reopens it.
"""

from __future__ import annotations

import logging

from vapi_chargeback.close.store import manifest_ids, published_lines
from vapi_chargeback.published import (
    READ_ATTEMPTS,
    OutputRoot,
    PublishedSetError,
    read_published,
)
from vapi_chargeback.statement import DRAFT, PreviousMonth
from vapi_chargeback.variance import previous_period

log = logging.getLogger(__name__)


def previous_month(output_root: OutputRoot, period: str, prefix: str) -> PreviousMonth | None:
    """The month before ``period`` as published; ``None`` when it has no verified set (never
    published, or damaged: ``read_published`` has then logged what does not verify).

    ``prefix`` rebuilds the statement id of a set published before manifests recorded one.
    A set replaced between verifying its manifest and reading its CSV is read again.
    """
    before = previous_period(period)
    for _ in range(READ_ATTEMPTS):
        try:
            manifest, lines = published_lines(output_root, before)
        except PublishedSetError:
            if read_published(output_root, before) is None:
                log.info(
                    "%s: no verified published statement of %s to compare with", period, before
                )
                return None
            continue
        return PreviousMonth(
            period=before,
            lines=lines,
            statement_id=manifest_ids(manifest, prefix).org,
            status=str(manifest.get("status") or DRAFT),
        )
    raise PublishedSetError(
        f"{before} was replaced {READ_ATTEMPTS} times while {period} read it to compare with;"
        " run the month again once its publishers have finished"
    )
