"""The ``settled`` sensor: scheduled runs wait for settlement_delay_hours, read at run time."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowFailException

from vapi_chargeback.airflow.settlement import month_settled
from vapi_chargeback.config import ConfigError
from vapi_chargeback.pipeline import settlement_pending

CONFIG_DIR = Path(__file__).resolve().parents[3] / "include" / "config"
# October 2026 in Europe/Berlin (CET after 25 October) ends 2026-10-31 23:00 UTC.
OCTOBER_ENDS = datetime(2026, 10, 31, 23, tzinfo=UTC)


def write_config(folder: Path, *, delay_hours: int, timezone: str = "Europe/Berlin") -> Path:
    """A copy of the demo config (and its mapping) with the given zone and delay."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(CONFIG_DIR / "assistant_teams.csv", folder / "assistant_teams.csv")
    text = (CONFIG_DIR / "chargeback.yaml").read_text()
    text = text.replace("settlement_delay_hours: 6", f"settlement_delay_hours: {delay_hours}")
    text = text.replace("timezone: Europe/Berlin", f"timezone: {timezone}")
    path = folder / "chargeback.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("delay_hours", "now", "expected"),
    [
        pytest.param(6, datetime(2026, 11, 1, 4, 59, tzinfo=UTC), datetime(2026, 11, 1, 5, tzinfo=UTC), id="a-minute-before"),
        pytest.param(6, datetime(2026, 11, 1, 5, tzinfo=UTC), None, id="at-the-moment"),
        pytest.param(0, OCTOBER_ENDS, None, id="no-delay-at-local-month-end"),
        pytest.param(0, datetime(2026, 10, 31, 22, 59, tzinfo=UTC), OCTOBER_ENDS, id="no-delay-before-month-end"),
        pytest.param(744, datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 12, 1, 23, tzinfo=UTC), id="longest-delay"),
    ],
)  # fmt: skip
def test_a_month_settles_at_its_local_end_plus_the_configured_delay(
    tmp_path: Path, delay_hours: int, now: datetime, expected: datetime | None
) -> None:
    config = write_config(tmp_path, delay_hours=delay_hours)
    assert settlement_pending(config, "2026-10", now=now) == expected


def test_the_zone_of_the_config_decides_when_the_month_ends(tmp_path: Path) -> None:
    config = write_config(tmp_path, delay_hours=0, timezone="America/Los_Angeles")
    # October ends at 2026-11-01 07:00 UTC in Los Angeles (PDT), 8 hours after Berlin.
    now = datetime(2026, 11, 1, 6, tzinfo=UTC)
    assert settlement_pending(config, "2026-10", now=now) == datetime(2026, 11, 1, 7, tzinfo=UTC)


def test_the_config_is_read_at_every_check(tmp_path: Path) -> None:
    """Lowering the delay in chargeback.yaml releases a waiting month at its next check."""
    now = datetime(2026, 11, 2, tzinfo=UTC)
    config = write_config(tmp_path, delay_hours=48)
    assert settlement_pending(config, "2026-10", now=now) is not None
    write_config(tmp_path, delay_hours=6)
    assert settlement_pending(config, "2026-10", now=now) is None


def test_no_month_means_the_last_complete_one_and_reads_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    assert settlement_pending(missing, None, now=datetime.now(UTC)) is None


def test_a_bad_config_is_a_permanent_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, delay_hours=6)
    config.write_text(
        config.read_text().replace("settlement_delay_hours: 6", "settlement_delay_hours: -1")
    )
    with pytest.raises(ConfigError, match="settlement_delay_hours"):
        settlement_pending(config, "2026-10", now=datetime.now(UTC))


# --- the sensor, as Airflow calls it ------------------------------------------------------


def context(run_type: str, month_start: pendulum.DateTime) -> dict[str, Any]:
    """The parts of a task context the sensor reads."""
    return {
        "dag_run": SimpleNamespace(run_type=run_type),
        "params": {"month": None},
        "data_interval_start": month_start,
        "data_interval_end": month_start.add(months=1),
        "run_id": f"{run_type}__x",
    }


@pytest.fixture
def config_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The Airflow Variable ``vapi_chargeback_config`` pointing at a config in ``tmp_path``."""
    path = tmp_path / "config" / "chargeback.yaml"
    monkeypatch.setenv("AIRFLOW_VAR_VAPI_CHARGEBACK_CONFIG", str(path))
    return path


def this_month() -> pendulum.DateTime:
    return pendulum.now("UTC").start_of("month")


def test_a_scheduled_run_waits_for_an_unsettled_month(
    config_variable: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # In Pago Pago (UTC-11, among the last places a month ends) last month ended at 11:00
    # UTC on the 1st of this one; the longest delay allowed, 31 days, outlasts this month.
    write_config(config_variable.parent, delay_hours=744, timezone="Pacific/Pago_Pago")
    last_month = this_month().subtract(months=1)
    with caplog.at_level(logging.INFO):
        assert month_settled(context("scheduled", last_month), Path("/unused")) is False
    assert f"{last_month:%Y-%m} settles at" in caplog.text
    assert str(config_variable) in caplog.text


def test_a_scheduled_run_of_a_settled_month_goes_on(config_variable: Path) -> None:
    write_config(config_variable.parent, delay_hours=744)
    long_ago = this_month().subtract(months=3)
    assert month_settled(context("scheduled", long_ago), Path("/unused")) is True
    assert month_settled(context("backfill", long_ago), Path("/unused")) is True


def test_a_manual_run_never_waits_and_reads_no_config(config_variable: Path) -> None:
    """``plan`` refuses an unsettled month at once; the sensor leaves that to it."""
    assert not config_variable.exists()
    last_month = this_month().subtract(months=1)
    assert month_settled(context("manual", last_month), Path("/unused")) is True


def test_a_bad_config_fails_the_sensor_without_retries(config_variable: Path) -> None:
    write_config(config_variable.parent, delay_hours=6)
    config_variable.write_text("org: [")
    with pytest.raises(AirflowFailException, match="ConfigError"):
        month_settled(context("scheduled", this_month().subtract(months=1)), Path("/unused"))
