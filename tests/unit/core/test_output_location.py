"""Where statements go is one rule (``pipeline.output_location``), used by the run and the page.

Table-driven over who names a place (override, config, neither); then ``plan_run`` and the
statements page's ``airflow_source`` are asked with the same settings and must agree, so
the page always lists the folder the DAG writes to.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vapi_chargeback import pipeline
from vapi_chargeback.airflow import statements_page
from vapi_chargeback.config import load_config

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "include" / "config" / "chargeback.yaml"
NOW = datetime(2026, 12, 6, tzinfo=UTC)


def _config_with_output(folder: Path, output: str | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("assistant_teams.csv", "fx_rates.csv"):
        (folder / name).write_bytes((CONFIG.parent / name).read_bytes())
    text = CONFIG.read_text(encoding="utf-8")
    if output is not None:
        text += f"\noutput: {output}\n"
    (folder / CONFIG.name).write_text(text, encoding="utf-8")
    return folder / CONFIG.name


@pytest.mark.parametrize(
    ("override", "config_output", "expected"),
    [
        ("s3://override/x", "s3://config/y", "s3://override/x"),
        (None, "s3://config/y", "s3://config/y"),
        ("", "s3://config/y", "s3://config/y"),
        (None, None, "file:///default"),
    ],
    ids=["override-wins", "config-next", "empty-override-is-none", "default-last"],
)
def test_output_location_order(
    tmp_path: Path, override: str | None, config_output: str | None, expected: str
) -> None:
    config = load_config(_config_with_output(tmp_path, config_output))

    assert pipeline.output_location(override, config, "file:///default") == expected


def test_an_unreadable_config_leaves_override_then_default() -> None:
    assert pipeline.output_location("s3://o/p", None, "file:///d") == "s3://o/p"
    assert pipeline.output_location(None, None, "file:///d") == "file:///d"


@pytest.mark.parametrize("variable", [None, "VARIABLE"], ids=["no-variable", "variable"])
@pytest.mark.parametrize("in_config", [False, True], ids=["no-config-output", "config-output"])
def test_the_page_shows_the_folder_the_run_writes_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str | None, in_config: bool
) -> None:
    from airflow.models.variable import Variable

    from vapi_chargeback.airflow.settings import CONFIG_VARIABLE, OUTPUT_VARIABLE

    project = tmp_path / "project"
    override = (tmp_path / "from-variable").as_uri() if variable else None
    config = _config_with_output(
        project / "conf", (tmp_path / "from-config").as_uri() if in_config else None
    )
    values = {CONFIG_VARIABLE: str(config), OUTPUT_VARIABLE: override}

    def get(key: str, default_var: Any = None, **_: Any) -> Any:
        return values.get(key) or default_var

    monkeypatch.setattr(Variable, "get", staticmethod(get))
    planned = pipeline.plan_run(
        pipeline.RunSettings(
            config_path=str(config),
            output_url=override,
            default_output_url=(project / "output").as_uri(),
            month="2026-10",
            run_id="rule",
        ),
        now=NOW,
    )

    assert statements_page.airflow_source(project).output_url == planned.output_url
    expected = override or ((tmp_path / "from-config").as_uri() if in_config else None)
    assert planned.output_url == (expected or (project / "output").as_uri())
