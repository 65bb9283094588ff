"""Keeping the output's ``_runs/`` small: the DAGs' ``tidy_runs`` task and the tasks' leases.

``tidy_runs`` runs after ``publish`` in both DAGs and removes run work folders older than
chargeback.yaml's ``retention.runs_days`` (:func:`vapi_chargeback.runfolders.sweep_runs`):
never a published version's run, never a folder a task is working in. Each step of a run
holds its folder's lease for as long as it works there (``steps.work_lease``, applied by
``steps.failure_policy`` to every step that is handed the run).

The render folders a killed publisher left in the worker's temp directory are removed
before each publish (``statements.render_temp``), not here.

Parsing the DAG imports this module: everything heavy is imported inside the functions.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vapi_chargeback.airflow.steps import failure_policy

log = logging.getLogger(__name__)


@failure_policy
def tidy_runs(run: dict[str, Any]) -> dict[str, Any]:
    """Remove the output's run folders older than ``retention.runs_days``; say what stayed."""
    from vapi_chargeback.airflow.settings import storage_path
    from vapi_chargeback.config import load_config
    from vapi_chargeback.runfolders import sweep_runs

    config = load_config(Path(run["config_path"]))
    keep_days = config.retention.runs_days
    report = sweep_runs(storage_path(run["output_url"]), keep_days=keep_days)
    log.info(
        "run folders: removed %d older than %d days; kept %d published, %d in use, %d recent",
        len(report.removed),
        keep_days,
        len(report.published),
        len(report.in_use),
        len(report.recent),
    )
    return {
        "keep_days": keep_days,
        "removed": report.removed,
        "published": len(report.published),
        "in_use": report.in_use,
        "recent": len(report.recent),
    }
