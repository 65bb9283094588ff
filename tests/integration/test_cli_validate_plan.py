"""``vapi-chargeback validate`` and ``plan``, run as users run them: the installed entry point
in its own process, no API anywhere.

``validate`` is held to the run itself: for every config and mapping case of the bad-input
table (``tests/reliability/test_reliability_bad_inputs.py``) its lines are exactly the
problems the run's plan step raises, file, line and message. ``plan --json`` is held to the
``plan.json`` a run's plan step writes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from vapi_chargeback import cli, localrun, pipeline
from vapi_chargeback.analytics.models import AnalyticsQueryDTO
from vapi_chargeback.inputfiles import InputFileError

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "include" / "config" / "chargeback.yaml"
CLI = localrun.BIN / "vapi-chargeback"
MONTH = "2026-10"
PLANNED_AT = datetime(2026, 12, 1, tzinfo=UTC)
"""Late enough for October to have settled in every zone."""
LOCATED = re.compile(r"^[^:\s][^:]*(:\d+)?: \S")
"""``file:line: message`` (or ``file: message`` for a problem of the whole file)."""


def cli_run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("VAPI_")}
    return subprocess.run(
        [str(CLI), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _bad_inputs() -> ModuleType:
    """The reliability suite's table of bad inputs, loaded from its file (tests have no
    packages), so both suites refuse the very same inputs."""
    name = "test_reliability_bad_inputs"
    if name in sys.modules:
        return sys.modules[name]
    path = ROOT / "tests" / "reliability" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


BAD = _bad_inputs()
INPUT_CASES = {**BAD.CONFIG_CASES, **BAD.MAPPING_CASES}
CASE_IDS = [f"{case.kind}-{name}" for name, case in INPUT_CASES.items()]


def run_problems(config: Path, output: Path) -> list[str]:
    """The problems a run raises for ``config``: its plan step, as the DAG's first task."""
    settings = pipeline.RunSettings(
        config_path=str(config),
        output_url=output.as_uri(),
        default_output_url=output.as_uri(),
        month=MONTH,
        run_id="bad-input",
    )
    with pytest.raises(InputFileError) as caught:
        pipeline.plan_run(settings, now=PLANNED_AT)
    return caught.value.problems


@pytest.mark.parametrize(("name", "case"), list(INPUT_CASES.items()), ids=CASE_IDS)
def test_validate_gives_the_runs_messages_and_line_numbers(
    name: str, case: Any, tmp_path: Path
) -> None:
    config = BAD._config_dir(tmp_path, case)
    expected = run_problems(config, tmp_path / "out")

    done = cli_run("validate", str(config))

    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[: len(expected)] == expected
    if case.kind == "mapping" or "cost-center" not in name:
        assert lines == expected
    else:
        # A config that lost a cost center id: the mapping rows naming it are reported too
        # (checked by the ids as written), as the run reports them once the config loads.
        mapping = config.with_name("assistant_teams.csv")
        assert all(
            line.startswith(f"{mapping}:") and "is not in chargeback.yaml" in line
            for line in lines[len(expected) :]
        ), lines
    assert re.search(case.message, done.stdout), done.stdout
    assert all(LOCATED.match(line) for line in done.stdout.splitlines()), done.stdout
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.csv"))


def test_validate_passes_the_demo_config_with_one_summary_line() -> None:
    done = cli_run("validate", str(CONFIG), "--month", MONTH)

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    assert len(done.stdout.splitlines()) == 1
    assert done.stdout.startswith("OK: ")
    for name in ("chargeback.yaml", "assistant_teams.csv", "fx_rates.csv", f"{MONTH}'s plan"):
        assert name in done.stdout


def demo_folder(folder: Path) -> Path:
    folder.mkdir()
    for name in ("chargeback.yaml", "assistant_teams.csv", "fx_rates.csv"):
        shutil.copy(CONFIG.parent / name, folder)
    return folder / "chargeback.yaml"


def test_validate_reports_every_problem_of_every_file_in_one_pass(tmp_path: Path) -> None:
    """A run stops at the mapping; validate goes on to the invoices and the rates."""
    config = demo_folder(tmp_path / "config")
    mapping = config.with_name("assistant_teams.csv")
    good = mapping.read_text(encoding="utf-8")
    rows = len(good.splitlines())
    mapping.write_text(
        good
        + "6a1f3c2e-0000-4000-8000-00000000abcd,legal-team,legal,,\n"
        + "6a1f3c2e-0000-4000-8000-00000000abce,,sales,2026-13-01,\n"
        + "6a1f3c2e-0000-4000-8000-00000000abcf,team\n",
        encoding="utf-8",
    )
    config.with_name("invoices.csv").write_text(
        "period,invoice_id,amount_usd\n2026-10,INV-1,12.345\n2026-10,INV-2,10.00\n",
        encoding="utf-8",
    )
    rates = config.with_name("fx_rates.csv")
    rates.write_text(rates.read_text(encoding="utf-8") + "2026-10-32,EUR,0.9\n", encoding="utf-8")
    rates_line = len(rates.read_text(encoding="utf-8").splitlines())

    done = cli_run("validate", "--config", str(config))

    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [
        f"{mapping}:{rows + 1}",
        f"{mapping}:{rows + 2}",
        f"{mapping}:{rows + 2}",
        f"{mapping}:{rows + 3}",
        *[line.split(": ", 1)[0] for line in lines if "invoices.csv" in line],
        f"{rates}:{rates_line}",
    ]
    assert "cost_center_id 'legal' is not in chargeback.yaml" in lines[0]
    assert any("team is blank" in line for line in lines)
    assert any("'2026-13-01' is not a date" in line for line in lines)
    invoices = [line for line in lines if "invoices.csv" in line]
    assert invoices and all(
        line.startswith(f"{config.with_name('invoices.csv')}:") for line in invoices
    )
    assert f"{len(lines)} problems" in done.stderr


def test_validate_reports_the_config_and_the_mapping_when_both_are_broken(tmp_path: Path) -> None:
    """The config does not load; its files are still checked, by the names written in it."""
    config = demo_folder(tmp_path / "config")
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("timezone: Europe/Berlin", "timezone: Mars/Base", 1))
    mapping = config.with_name("assistant_teams.csv")
    rows = len(mapping.read_text(encoding="utf-8").splitlines())
    with mapping.open("a", encoding="utf-8") as file:
        file.write("6a1f3c2e-0000-4000-8000-00000000abcd,legal-team,legal,,\n")
    line = text.splitlines().index("  timezone: Europe/Berlin") + 1

    done = cli_run("validate", str(config))

    assert done.returncode == 1
    assert [entry.split(": ", 1)[0] for entry in done.stdout.splitlines()] == [
        f"{config}:{line}",
        f"{mapping}:{rows + 1}",
    ]
    assert "cost_center_id 'legal' is not in chargeback.yaml" in done.stdout
    assert "does not load; the files it names were checked" in done.stderr


def test_validate_names_the_delimiter_of_a_semicolon_mapping(tmp_path: Path) -> None:
    config = demo_folder(tmp_path / "config")
    mapping = config.with_name("assistant_teams.csv")
    mapping.write_text(mapping.read_text(encoding="utf-8").replace(",", ";"), encoding="utf-8")

    done = cli_run("validate", str(config))

    assert done.returncode == 1
    assert done.stdout.splitlines() == run_problems(config, tmp_path / "out")
    [line] = done.stdout.splitlines()
    assert line.startswith(f"{mapping}:1: header ")
    assert "looks ';'-separated; the file must be comma-separated" in line


def test_validate_without_a_config_file_exits_1_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"

    done = cli_run("validate", str(missing))

    assert done.returncode == 1
    assert done.stdout == f"{missing}: file not found; check the path\n"
    assert done.stderr == "vapi-chargeback: 1 problem\n"


def test_validate_with_a_month_checks_what_that_months_run_checks(tmp_path: Path) -> None:
    """The demo's rates end before 2030: a run of 2030-01 stops at the FX rate, and so does
    validate with --month (without it the file itself is fine)."""
    config = demo_folder(tmp_path / "config")

    plain = cli_run("validate", str(config))
    monthly = cli_run("validate", str(config), "--month", "2030-01")

    assert plain.returncode == 0, plain.stdout
    assert monthly.returncode == 1
    [line] = monthly.stdout.splitlines()
    assert line.startswith(f"{config.with_name('fx_rates.csv')}: the newest EUR rate")


# --- plan --------------------------------------------------------------------------------


def written_plan(config: Path, output: Path, month: str = MONTH) -> dict[str, Any]:
    """The plan.json a run's plan step writes to its work folder."""
    settings = pipeline.RunSettings(
        config_path=str(config),
        output_url=output.as_uri(),
        default_output_url=output.as_uri(),
        month=month,
        run_id="planned",
    )
    run = pipeline.plan_run(settings, now=PLANNED_AT)
    document: dict[str, Any] = json.loads(
        (Path(run.work_url.removeprefix("file://")) / "plan.json").read_text(encoding="utf-8")
    )
    return document


def test_plan_json_is_the_plan_a_run_writes_and_the_requests_it_sends(tmp_path: Path) -> None:
    done = cli_run("plan", "--month", MONTH, "--json", str(CONFIG))

    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    plan = written_plan(CONFIG, tmp_path / "out")
    assert shown["plan"] == plan
    assert [len(request["body"]["queries"]) for request in shown["requests"]] == [
        len(batch) for batch in plan["batches"]
    ]
    for request, batch in zip(shown["requests"], plan["batches"], strict=True):
        body = AnalyticsQueryDTO.model_validate(request["body"])
        assert [query.name for query in body.queries] == batch
        assert (request["method"], request["path"]) == ("POST", "/analytics")
    assert any("GET /assistant" in item for item in shown["also"])


def test_plan_table_lists_every_query_in_its_request(tmp_path: Path) -> None:
    plan = written_plan(CONFIG, tmp_path / "out")

    done = cli_run("plan", "--month", MONTH, "--config", str(CONFIG), "--batch-size", "2")

    assert done.returncode == 0, done.stderr
    queries = len(plan["queries"])
    requests = -(-queries // 2)
    assert done.stdout.startswith(
        f"{MONTH} (Europe/Berlin): {queries} queries in {requests} POST /analytics request(s)"
    )
    table = done.stdout.split("\n\n")[1].splitlines()[2:]
    assert [row.split()[1] for row in table] == [query["name"] for query in plan["queries"]]
    assert [int(row.split()[0]) for row in table] == [1 + n // 2 for n in range(queries)]


def test_plan_of_a_large_org_is_windowed_from_the_mapping_without_the_api(tmp_path: Path) -> None:
    """From 200 mapped assistants on the plan cuts its queries in windows; it learns the
    assistants from the mapping CSV, so plan needs no listing (and no key)."""
    config = demo_folder(tmp_path / "config")
    mapping = config.with_name("assistant_teams.csv")
    extra = "".join(
        f"00000000-0000-4000-8000-{n:012d},bulk,support,2025-01-01,\n" for n in range(1, 251)
    )
    mapping.write_text(mapping.read_text(encoding="utf-8") + extra, encoding="utf-8")
    small = written_plan(CONFIG, tmp_path / "small")

    done = cli_run("plan", "--month", MONTH, "--json", str(config))

    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["plan"] == written_plan(config, tmp_path / "out")
    assert shown["plan"]["families"], "a large org's plan has windowed query families"
    assert not small["families"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["plan"], "--month", id="plan-without-month"),
        pytest.param(["plan", "--month", "2026-13"], "'2026-13' is not a month", id="bad-month"),
        pytest.param(
            ["plan", "--month", MONTH, "--batch-size", "0"], "not a whole number", id="batch-0"
        ),
        pytest.param(["validate", "--month", "October"], "is not a month", id="validate-month"),
        pytest.param(["diff", "2026-10"], "B", id="diff-one-side"),
        pytest.param(["diff", "2026-10@2", "2026-10"], "YYYY-MM@vN", id="diff-bad-version"),
        pytest.param(["status", "--bogus"], "unrecognized arguments", id="status-unknown-flag"),
        pytest.param(["nonsense"], "invalid choice", id="unknown-command"),
        pytest.param(["airflow"], "give the airflow command", id="airflow-without-command"),
    ],
)
def test_a_wrong_command_line_exits_2_with_a_clear_message(args: list[str], message: str) -> None:
    done = cli_run(*args)

    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def _flags(parser: argparse.ArgumentParser, name: str) -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for verb, sub in action.choices.items():
                found += _flags(sub, f"{name} {verb}".strip())
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            found.append((name, action))
    return found


def test_every_flag_and_argument_of_every_command_has_help_text() -> None:
    flags = _flags(cli._parser(), "")
    commands = {name for name, _ in flags}

    assert {
        "run",
        "validate",
        "plan",
        "status",
        "diff",
        "fx-rates",
        "mapping suggest",
        "airflow",
    } <= commands
    missing = [f"{name} {action.dest}" for name, action in flags if not (action.help or "").strip()]
    assert missing == []


@pytest.mark.parametrize("command", ["validate", "plan", "status", "diff", "airflow"])
def test_help_of_each_new_command_exits_0_and_shows_each_flag(command: str) -> None:
    done = cli_run(command, "--help")
    parser = cli._parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    expected = [
        flag
        for action in sub.choices[command]._actions
        for flag in action.option_strings
        if flag.startswith("--")
    ]

    assert done.returncode == 0
    assert "Exit status" in done.stdout
    for flag in expected:
        assert flag in done.stdout, flag
