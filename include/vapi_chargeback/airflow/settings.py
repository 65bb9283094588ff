"""Read a run's settings from Airflow (Variables, params, data interval) at run time.

Variables are read here, inside tasks, never at parse time: a DAG file that reads them at
the top level queries the metadata database every time the dag-processor parses it.
Storage URLs become paths here too (:func:`storage_path`), so every task resolves the
output URL the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import ObjectStoragePath, Variable

from vapi_chargeback.airflow.hook import VapiAnalyticsHook
from vapi_chargeback.period import month_of_interval
from vapi_chargeback.pipeline import RunSettings

CONFIG_VARIABLE = "vapi_chargeback_config"
OUTPUT_VARIABLE = "vapi_chargeback_output"
DEFAULT_CONFIG = Path("include/config/chargeback.yaml")


def config_file(project_dir: Path) -> Path:
    """The run's chargeback.yaml; relative paths are relative to the project."""
    config = Path(Variable.get(CONFIG_VARIABLE, default=None) or DEFAULT_CONFIG)
    return config if config.is_absolute() else project_dir / config


def run_month(context: Any) -> str | None:
    """The ``month`` param, else the month of the run's data interval (None for neither)."""
    month = context["params"].get("month")
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if not month and start is not None and end is not None:
        month = month_of_interval(start, end)
    return month or None


def run_settings(context: Any, project_dir: Path) -> RunSettings:
    """Settings of the running DAG run.

    ``restate`` and ``reason`` are passed as given: whether a restatement may happen
    (the month is final, the reason is there and one line) is the plan step's decision,
    which refuses it before anything is fetched.
    """
    hook = VapiAnalyticsHook()
    params = context["params"]
    return RunSettings(
        config_path=str(config_file(project_dir)),
        output_url=Variable.get(OUTPUT_VARIABLE, default=None),
        default_output_url=(project_dir / "output").as_uri(),
        month=run_month(context),
        run_id=context["run_id"],
        max_queries_per_request=hook.max_queries_per_request(),
        expect_empty_month=bool(params.get("expect_empty_month", False)),
        api_base_url=hook.base_url(),
        restate=bool(params.get("restate", False)),
        reason=params.get("reason") or None,
    )


def storage_path(url: str) -> ObjectStoragePath:
    """``url`` as Airflow's ``ObjectStoragePath``: the ``open_path`` of every pipeline step.

    ``s3://aws_s3@bucket/prefix`` names the Airflow connection ``aws_s3`` (its keys,
    region and ``endpoint_url`` extra); a plain ``upath.UPath`` would take
    ``aws_s3@bucket`` for the bucket name and ignore the connection. ``str()`` of the
    path keeps ``conn_id@``, so the work URL that ``plan`` hands to later tasks (on any
    worker) still names the connection. Without ``conn_id@`` the provider's default
    credential chain applies; plain paths and ``file://`` URLs stay local.
    """
    return ObjectStoragePath(url)
