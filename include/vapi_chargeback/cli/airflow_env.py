"""``vapi-chargeback airflow …``: Airflow's own command line in the project's environment.

Airflow lives in the project (``AIRFLOW_HOME=.airflow``, SQLite, the DAGs and plugins of
the checkout, no examples), which the Makefile exports for its targets. A fresh shell has
none of it, and ``airflow dags test`` there fails with "Database migration required" (a
new, empty home) or does not find the DAG. This sets the Makefile's variables, migrates the
metadata database when it is new or Airflow was upgraded since the last migration, then
runs ``airflow`` with the arguments given. It runs Airflow as a process: the core never
imports Airflow.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from vapi_chargeback.cli.common import EXIT_ERROR, PROG

BIN = Path(sys.executable).parent
MIGRATED_MARK = ".vapi-chargeback-migrated"
"""In AIRFLOW_HOME: the Airflow version the database was last migrated by."""
DAG_FILES = "dags/vapi_chargeback*.py"
"""What makes a folder the project's checkout."""


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    airflow = commands.add_parser(
        "airflow",
        help="run Airflow's CLI with the project's environment (AIRFLOW_HOME etc.), migrating"
        " its database first when needed",
        description=(
            "Run `airflow ARGS…` with the environment the Makefile exports: AIRFLOW_HOME ="
            " PROJECT/.airflow, the SQLite database in it, DAGs from PROJECT/dags, plugins"
            " from PROJECT/plugins, no example DAGs, PYTHONPATH with PROJECT/include. These"
            " replace any values the shell has, as make does. The metadata database is"
            " migrated (`airflow db migrate`) first when it does not exist yet or Airflow was"
            " upgraded since it was last migrated."
        ),
        epilog=(
            "Everything after the options is passed to airflow unchanged. Exit status: airflow's"
            " own; 1 when the migration fails (the log's path is shown), 2 a wrong command line."
            " Example, against the real API: export AIRFLOW_CONN_VAPI_DEFAULT='{…}';"
            " vapi-chargeback airflow dags test vapi_chargeback_monthly 2026-11-01"
        ),
    )
    airflow.add_argument(
        "--project-dir",
        type=Path,
        metavar="DIR",
        help="the checkout holding dags/ and plugins/ (default: the one this package is"
        " installed from, else the working directory)",
    )
    airflow.add_argument(
        "--airflow-home",
        type=Path,
        metavar="DIR",
        help="AIRFLOW_HOME, holding airflow.db (default: PROJECT/.airflow)",
    )
    airflow.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not migrate the database first, even if it looks new",
    )
    airflow.add_argument(
        "airflow_args",
        nargs=argparse.REMAINDER,
        metavar="ARGS",
        help="the airflow command, e.g. dags test vapi_chargeback_monthly 2026-11-01",
    )
    airflow.set_defaults(handler=_airflow)


def project_dir(given: Path | None) -> Path | None:
    """The checkout with the DAG: ``given``, else this package's, else the working directory."""
    candidates = [given] if given else [Path(__file__).resolve().parents[3], Path.cwd()]
    return next((path.resolve() for path in candidates if any(path.glob(DAG_FILES))), None)


def environment(project: Path, home: Path, base: dict[str, str]) -> dict[str, str]:
    """``base`` with the Makefile's Airflow variables (``Makefile``: "Airflow runs from the
    project with no global state")."""
    include = str(project / "include")
    python_path = base.get("PYTHONPATH")
    return {
        **base,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "PYTHONPATH": f"{include}:{python_path}" if python_path else include,
    }


def airflow_version() -> str:
    try:
        return version("apache-airflow")
    except PackageNotFoundError:
        return "unknown"


def needs_migration(home: Path) -> bool:
    """No database yet, or none migrated by the Airflow installed now."""
    mark = home / MIGRATED_MARK
    if not (home / "airflow.db").is_file() or not mark.is_file():
        return True
    return mark.read_text(encoding="utf-8").strip() != airflow_version()


def migrate(home: Path, env: dict[str, str]) -> bool:
    """``airflow db migrate`` into ``home/db-migrate.log``; whether it succeeded."""
    home.mkdir(parents=True, exist_ok=True)
    log = home / "db-migrate.log"
    print(
        f"{PROG}: migrating the Airflow database in {home} (new, or Airflow upgraded)…",
        file=sys.stderr,
    )
    with log.open("wb") as sink:
        done = subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        print(
            f"{PROG}: error: `airflow db migrate` failed (exit {done.returncode}); log: {log}\n{tail}",
            file=sys.stderr,
        )
        return False
    (home / MIGRATED_MARK).write_text(airflow_version() + "\n", encoding="utf-8")
    return True


def _airflow(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    given = args.airflow_args
    command = given[1:] if given[:1] == ["--"] else given
    if not command:
        parser.error("airflow: give the airflow command to run, e.g. `dags list`")
    project = project_dir(args.project_dir)
    if project is None:
        where = args.project_dir or "this package's checkout or the working directory"
        parser.error(f"--project-dir: no {DAG_FILES} in {where}; point it at the checkout")
    home = (args.airflow_home or project / ".airflow").resolve()
    if not (BIN / "airflow").is_file():
        parser.error(f"airflow is not installed beside {sys.executable}; run make install")
    env = environment(project, home, dict(os.environ))
    if not args.no_migrate and needs_migration(home) and not migrate(home, env):
        return EXIT_ERROR
    return subprocess.run([str(BIN / "airflow"), *command], env=env).returncode
