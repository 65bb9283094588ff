"""docker-compose.yml, Dockerfile and .env.example, checked without a Docker engine.

No Docker engine runs on CI, so the compose file is checked the way ``docker compose config``
would — interpolated with the settings of ``.env.example`` and validated against the
Compose Specification's JSON schema (vendored in tests/fixtures/compose/) — plus the
structure this project relies on: the CeleryExecutor services of Airflow's official file,
health checks, ordered start-up, the project mounts, one JWT secret and execution-API URL
for every Airflow service, and the connection and Variable names the code actually reads
(found in the code, not retyped here) — plus a security review (``support.compose_file``):
the FAB auth manager, no default or literal secret, loopback ports, Flower behind basic
auth, the Vapi key only in the worker's connection file, which must survive any key.
Deliberately broken copies must fail these checks, so the checks are known to bite.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from vapi_chargeback.airflow import provider
from vapi_chargeback.airflow.hook import VapiAnalyticsHook

from support.compose_file import (
    SECRET_NAME,
    InterpolationError,
    connection_file_problems,
    interpolate,
    interpolate_text,
    read_env_file,
    referenced_variables,
    security_problems,
    without_comments,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements" / "lock.txt"
SCHEMA = ROOT / "tests" / "fixtures" / "compose" / "compose-spec.json"
CODE_DIRS = [ROOT / "dags", ROOT / "include" / "vapi_chargeback"]

PYTHON_TAG = "python3.11"
APISERVER = "airflow-apiserver"
INIT = "airflow-init"
AIRFLOW_COMMANDS = {
    APISERVER: "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
    "flower": "celery flower",
}
"""The long-running Airflow services of the official CeleryExecutor file and their commands."""
REQUIRED_SERVICES = {"postgres", "redis", INIT, "vapi-emulator", *AIRFLOW_COMMANDS}
PROJECT_MOUNTS = {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"}
SHARED_SETTINGS = [
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CORE__AUTH_MANAGER",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
]
"""Settings every Airflow process must agree on: a differing JWT secret or execution-API URL
shows up only at run time, as tasks failing with 403s or connection errors."""
SECRET_SETTINGS = [
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
]
COMPOSE_OWN_VARIABLES = {"COMPOSE_PROFILES", "COMPOSE_PROJECT_NAME", "COMPOSE_FILE"}
CONNECTION = f"AIRFLOW_CONN_{VapiAnalyticsHook.default_conn_name.upper()}"

# --- what the code reads ------------------------------------------------------------------


def variables_read_by_code() -> set[str]:
    """Names passed to ``Variable.get`` anywhere in dags/ and the package, constants resolved."""
    names: set[str] = set()
    for directory in CODE_DIRS:
        for path in sorted(directory.rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            constants = {
                target.id: node.value.value
                for node in tree.body
                if isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
                for target in node.targets
                if isinstance(target, ast.Name)
            }
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "get"
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "Variable"
                    and node.args
                ):
                    arg = node.args[0]
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        names.add(arg.value)
                    elif isinstance(arg, ast.Name) and arg.id in constants:
                        names.add(constants[arg.id])
    return names


@cache
def expected_code_env() -> dict[str, str]:
    """Environment name → what it is, for every connection and Variable the code reads."""
    env = {CONNECTION: "connection"}
    for name in variables_read_by_code():
        env[f"AIRFLOW_VAR_{name.upper()}"] = "variable"
    return env


# --- the checks ---------------------------------------------------------------------------


def services_with_condition(doc: dict[str, Any], condition: str) -> set[str]:
    """Services some other service waits for with ``condition``."""
    found = set()
    for service in doc.get("services", {}).values():
        depends = service.get("depends_on") or {}
        if isinstance(depends, dict):
            found |= {name for name, dep in depends.items() if dep.get("condition") == condition}
    return found


def airflow_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run Airflow itself (they carry its executor setting)."""
    return {
        name: service
        for name, service in doc.get("services", {}).items()
        if isinstance(service.get("environment"), dict)
        and "AIRFLOW__CORE__EXECUTOR" in service["environment"]
    }


def mount_targets(service: dict[str, Any]) -> set[str]:
    """Container paths of a service's volumes, short (``src:dst[:mode]``) or long syntax."""
    targets = set()
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            # ${AIRFLOW_PROJ_DIR:-.} has a colon of its own.
            parts = re.sub(r"\$\{[^}]*\}", "VAR", volume).split(":")
            targets.add(parts[1] if len(parts) > 1 else parts[0])
        else:
            targets.add(volume.get("target", ""))
    return targets


def structure_problems(doc: dict[str, Any]) -> list[str]:
    """Everything wrong with the compose document's structure, one sentence each."""
    problems: list[str] = []
    services: dict[str, dict[str, Any]] = doc.get("services", {})

    for name in sorted(REQUIRED_SERVICES - set(services)):
        problems.append(f"missing service {name}")
    for name, command in AIRFLOW_COMMANDS.items():
        if name in services and services[name].get("command") != command:
            problems.append(f"{name} must run `{command}`, not {services[name].get('command')!r}")

    one_shots = services_with_condition(doc, "service_completed_successfully")
    for name, service in services.items():
        if not (service.get("image") or service.get("build")):
            problems.append(f"{name} has neither image nor build")
        if name not in one_shots and "healthcheck" not in service:
            problems.append(f"{name} has no healthcheck")
        depends = service.get("depends_on", {})
        if isinstance(depends, list):
            problems.append(f"{name}: depends_on is a list; use conditions")
            continue
        for dependency, spec in depends.items():
            if dependency not in services:
                problems.append(f"{name} depends on unknown service {dependency}")
            if not (isinstance(spec, dict) and spec.get("condition")):
                problems.append(f"{name}: depends_on {dependency} has no condition")

    airflow = airflow_services(doc)
    for name, service in airflow.items():
        missing_mounts = PROJECT_MOUNTS - mount_targets(service)
        if missing_mounts:
            problems.append(f"{name} does not mount {sorted(missing_mounts)}")
        if name == INIT:
            continue
        depends = service.get("depends_on", {})
        if not isinstance(depends, dict):
            continue
        wanted = {"postgres": "service_healthy", "redis": "service_healthy"}
        wanted[INIT] = "service_completed_successfully"
        for dependency, condition in wanted.items():
            if (depends.get(dependency) or {}).get("condition") != condition:
                problems.append(f"{name} must wait for {dependency} ({condition})")
    worker_depends = services.get("airflow-worker", {}).get("depends_on", {})
    if isinstance(worker_depends, dict) and (
        (worker_depends.get(APISERVER) or {}).get("condition") != "service_healthy"
    ):
        problems.append(f"airflow-worker must wait for {APISERVER} (service_healthy)")

    for setting in SHARED_SETTINGS:
        values = {name: service["environment"].get(setting) for name, service in airflow.items()}
        if None in values.values():
            lacking = sorted(name for name, value in values.items() if value is None)
            problems.append(f"{setting} missing in {lacking}")
        elif len(set(values.values())) > 1:
            problems.append(f"{setting} differs between Airflow services: {values}")
    for name, service in airflow.items():
        url = str(service["environment"].get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", ""))
        if url and not url.startswith(f"http://{APISERVER}:8080/execution/"):
            problems.append(f"{name}: execution API URL {url!r} is not the {APISERVER} service")
        for setting in SECRET_SETTINGS:
            value = str(service["environment"].get(setting, ""))
            if value and not re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", value):
                problems.append(f"{name}: {setting} must come from a required .env variable")

    # The connection is not in any environment: the worker reads it from its secrets file.
    expected = {k: v for k, v in expected_code_env().items() if k != CONNECTION}
    for name, service in airflow.items():
        present = {
            key
            for key in service["environment"]
            if key.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))
        }
        for key in sorted(set(expected) - present):
            problems.append(f"{name}: {key} is missing (the code reads that {expected[key]})")
        for key in sorted(present - set(expected)):
            problems.append(f"{name}: {key} is set but no code reads it")
    return problems


@cache
def schema_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


def schema_problems(doc: dict[str, Any]) -> list[str]:
    """Schema violations; for a failed ``oneOf`` each branch's reasons, not just "no match"."""
    problems = []
    for error in schema_validator().iter_errors(doc):
        leaves = [e for e in error.context or [] if not e.context] or [error]
        for leaf in leaves:
            path = "/".join(map(str, leaf.absolute_path)) or "<root>"
            problems.append(f"{path}: {leaf.message[:300]}")
    return problems


def example_env() -> dict[str, str]:
    """.env.example with every empty secret filled in, as a user is told to do."""
    env = read_env_file(ENV_EXAMPLE)
    return {key: value or f"example-{key.lower()}" for key, value in env.items()}


def all_problems(text: str) -> list[str]:
    """Schema (raw and interpolated), structure and connection problems of one compose text."""
    doc = yaml.safe_load(text)
    problems = schema_problems(doc) + structure_problems(doc)
    try:
        resolved = interpolate(copy.deepcopy(doc), example_env())
    except InterpolationError as exc:
        return [*problems, f"interpolation with .env.example: {exc}"]
    problems += [f"interpolated: {p}" for p in schema_problems(resolved)]
    problems += security_problems(doc)
    conn_id = VapiAnalyticsHook.default_conn_name
    problems += connection_file_problems(resolved, conn_id, provider.CONNECTION_TYPE)
    return problems


# --- tests --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    return dict(yaml.safe_load(compose_text))


def test_compose_file_passes_every_check(compose_text: str) -> None:
    assert all_problems(compose_text) == []


def test_code_reads_the_contract_settings() -> None:
    """The scan finds at least what DESIGN §3 promises; finding nothing would void the checks."""
    contract = {
        "AIRFLOW_CONN_VAPI_DEFAULT": "connection",
        "AIRFLOW_VAR_VAPI_CHARGEBACK_CONFIG": "variable",
        "AIRFLOW_VAR_VAPI_CHARGEBACK_OUTPUT": "variable",
    }
    assert contract.items() <= expected_code_env().items()


def test_every_airflow_service_runs_the_project_image(compose: dict[str, Any]) -> None:
    images = {s.get("image") for s in airflow_services(compose).values()}
    builds = {s.get("build") for s in airflow_services(compose).values()}
    assert images == {"vapi-chargeback:local"}
    assert builds == {"."}


def test_statements_live_in_a_named_volume(compose: dict[str, Any]) -> None:
    assert "statements" in compose["volumes"]
    output = compose["services"]["airflow-worker"]["environment"][
        "AIRFLOW_VAR_VAPI_CHARGEBACK_OUTPUT"
    ]
    assert "file:///opt/airflow/statements" in output
    assert "statements:/opt/airflow/statements" in compose["services"]["airflow-worker"]["volumes"]


def test_missing_secrets_stop_compose(compose: dict[str, Any]) -> None:
    """Like `docker compose config` without a .env: it names the missing secret."""
    env = read_env_file(ENV_EXAMPLE)
    with pytest.raises(InterpolationError, match=r"AIRFLOW_FERNET_KEY|POSTGRES_PASSWORD"):
        interpolate(compose, env)


def test_env_example_covers_every_variable(compose_text: str) -> None:
    used = referenced_variables(without_comments(compose_text))
    pass_through = {
        key
        for service in yaml.safe_load(compose_text)["services"].values()
        if isinstance(service.get("environment"), dict)
        for key, value in service["environment"].items()
        if value is None
    }
    example_text = ENV_EXAMPLE.read_text()
    listed = set(read_env_file(ENV_EXAMPLE)) | set(
        re.findall(r"^#\s*([A-Z][A-Z0-9_]*)=", example_text, flags=re.M)
    )
    header = "\n".join(line for line in compose_text.splitlines() if line.startswith("#"))
    assert sorted(used - listed) == [], ".env.example lacks these"
    assert sorted(pass_through - listed) == [], ".env.example lacks these pass-throughs"
    assert sorted(listed - used - pass_through - COMPOSE_OWN_VARIABLES) == [], "unused in compose"
    undocumented = sorted(n for n in used | pass_through if not re.search(rf"\b{n}\b", header))
    assert undocumented == [], "not documented in docker-compose.yml's header"


def test_compose_selects_the_fab_auth_manager_and_gives_no_secret_a_default(
    compose: dict[str, Any],
) -> None:
    """Issue 19's acceptance, on its own: the review below must find nothing."""
    from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager

    from vapi_chargeback.airflow.auth_manager import ChargebackFabAuthManager

    manager = compose["x-airflow-common"]["environment"]["AIRFLOW__CORE__AUTH_MANAGER"]
    assert manager == "vapi_chargeback.airflow.auth_manager.ChargebackFabAuthManager"
    assert issubclass(ChargebackFabAuthManager, FabAuthManager)
    assert security_problems(compose) == []


def test_init_prepares_fab_once_per_up(compose: dict[str, Any]) -> None:
    """The init service's FAB steps, in order, each idempotent (the roles command and
    `airflow users create` of an existing user change nothing)."""
    script = "\n".join(compose["services"][INIT]["command"])
    steps = [
        "/entrypoint airflow version",  # with _AIRFLOW_DB_MIGRATE: Airflow's and FAB's tables
        "/entrypoint airflow fab-db migrate",
        "/entrypoint airflow users create --role Admin",
        "/entrypoint python -m vapi_chargeback.airflow.roles",
    ]
    positions = [script.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), positions
    assert compose["services"][INIT]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"


def test_env_example_commits_no_secret() -> None:
    secrets = {k: v for k, v in read_env_file(ENV_EXAMPLE).items() if SECRET_NAME.search(k)}
    assert secrets, "the secret settings must be listed (empty)"
    assert {k: v for k, v in secrets.items() if v} == {}


def test_dockerfile_matches_the_lock() -> None:
    """Same Airflow as the tests ran with; dependencies pinned by the lock."""
    airflow = re.search(r"^apache-airflow==(\S+)$", LOCK.read_text(), flags=re.M)
    assert airflow, "apache-airflow is not pinned in the lock"
    version = airflow.group(1)
    text = DOCKERFILE.read_text()
    assert re.search(rf"^FROM apache/airflow:{re.escape(version)}-{PYTHON_TAG}$", text, re.M)
    assert re.search(rf"^ARG AIRFLOW_VERSION={re.escape(version)}$", text, re.M)
    assert "--constraint /opt/vapi-chargeback/requirements/lock.txt" in text
    # The emulator services run this image, and vapi-emulator needs the emulator extra.
    assert '"/opt/vapi-chargeback[emulator]"' in text
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored, "secrets in .env must never reach the build context"


def drop_service(text: str, name: str) -> str:
    """The compose text without one service's block (its lines up to the next service)."""
    lines = text.splitlines(keepends=True)
    start = lines.index(f"  {name}:\n")
    end = start + 1
    while end < len(lines) and not re.match(r"  \S|\S", lines[end]):
        end += 1
    return "".join(lines[:start] + lines[end:])


# Each variant breaks the real file the way a careless edit would; the checks must say so.
BROKEN: list[tuple[str, Callable[[str], str], str]] = [
    (
        "missing-service",
        lambda t: drop_service(t, "airflow-triggerer"),
        "missing service airflow-triggerer",
    ),
    (
        "wrong-env-name",
        lambda t: t.replace("AIRFLOW_VAR_VAPI_CHARGEBACK_OUTPUT:", "AIRFLOW_VAR_VAPI_OUTPUT:"),
        "AIRFLOW_VAR_VAPI_CHARGEBACK_OUTPUT is missing",
    ),
    (
        "wrong-connection-name",
        lambda t: t.replace('{"vapi_default": {', '{"vapi": {'),
        "connection file has no connection 'vapi_default'",
    ),
    (
        "jwt-secret-not-shared",
        lambda t: t.replace(
            '      DUMB_INIT_SETSID: "0"\n',
            '      DUMB_INIT_SETSID: "0"\n      AIRFLOW__API_AUTH__JWT_SECRET: ${OTHER_SECRET:?x}\n',
        ),
        "AIRFLOW__API_AUTH__JWT_SECRET differs",
    ),
    (
        "hard-coded-secret",
        lambda t: t.replace(
            "${AIRFLOW_JWT_SECRET:?set AIRFLOW_JWT_SECRET in .env}", "not-so-secret"
        ),
        "AIRFLOW__API_AUTH__JWT_SECRET must come from a required .env variable",
    ),
    (
        "execution-api-elsewhere",
        lambda t: t.replace("http://airflow-apiserver:8080/execution/", "http://localhost:8080/"),
        "is not the airflow-apiserver service",
    ),
    (
        "no-healthcheck",
        lambda t: t.replace(
            "    command: scheduler\n    healthcheck:", "    command: scheduler\n    x-healthcheck:"
        ),
        "airflow-scheduler has no healthcheck",
    ),
    (
        "dags-not-mounted",
        lambda t: re.sub(
            r"^    - \$\{AIRFLOW_PROJ_DIR:-\.\}/dags:.*\n", "", t, count=1, flags=re.M
        ),
        "does not mount ['/opt/airflow/dags']",
    ),
    (
        "condition-typo",
        lambda t: t.replace("condition: service_completed_successfully", "condition: completed", 1),
        "'completed' is not one of",
    ),
    (
        "worker-starts-before-api-server",
        lambda t: t.replace(
            "      airflow-apiserver:\n        condition: service_healthy\n",
            "      airflow-apiserver:\n        condition: service_started\n",
        ),
        "airflow-worker must wait for airflow-apiserver",
    ),
    (
        "connection-pasted-into-json",
        lambda t: t.replace(
            '"password": os.environ["VAPI_API_KEY"]',
            '"password": eval(chr(34) + os.environ["VAPI_API_KEY"] + chr(34))',
        ),
        "connection writer failed",
    ),
    (
        "connection-in-every-service",
        lambda t: t.replace(
            "    AIRFLOW_VAR_VAPI_CHARGEBACK_OUTPUT:",
            "    AIRFLOW_CONN_VAPI_DEFAULT: ${VAPI_API_KEY:?x}\n    AIRFLOW_VAR_VAPI_CHARGEBACK_OUTPUT:",
        ),
        "airflow-scheduler is given VAPI_API_KEY",
    ),
    (
        "simple-auth-manager",
        lambda t: t.replace(
            "vapi_chargeback.airflow.auth_manager.ChargebackFabAuthManager",
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        ),
        "is not the FAB auth manager",
    ),
    (
        "default-admin-password",
        lambda t: t.replace(
            "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD in .env}",
            "${AIRFLOW_ADMIN_PASSWORD:-admin}",
        ),
        "has a default secret for AIRFLOW_ADMIN_PASSWORD",
    ),
    (
        "literal-secret",
        lambda t: t.replace(
            'DUMB_INIT_SETSID: "0"\n', 'DUMB_INIT_SETSID: "0"\n      DB_PASSWORD: airflow\n'
        ),
        "DB_PASSWORD is a literal secret",
    ),
    (
        "api-on-every-interface",
        lambda t: t.replace(
            '"${AIRFLOW_API_BIND:-127.0.0.1}:${AIRFLOW_API_PORT', '"${AIRFLOW_API_PORT'
        ),
        "is published on every interface",
    ),
    (
        "flower-on-every-interface",
        lambda t: t.replace("${FLOWER_BIND:-127.0.0.1}", "${FLOWER_BIND:-0.0.0.0}"),
        "flower: port",
    ),
    (
        "flower-without-auth",
        lambda t: t.replace(
            "      AIRFLOW__CELERY__FLOWER_BASIC_AUTH: ${FLOWER_BASIC_AUTH:-}\n", ""
        ),
        "flower has no basic auth",
    ),
    (
        "fixed-base-url",
        lambda t: t.replace("${AIRFLOW_BASE_URL:-http://localhost:8080}", "http://localhost:8080"),
        "AIRFLOW__API__BASE_URL is fixed",
    ),
    (
        "worker-without-connection-file",
        lambda t: t.replace("      - vapi-secrets:/opt/airflow/secrets:ro\n", ""),
        "mounted by ['airflow-init']",
    ),
]


def broken_cases() -> Iterator[Any]:
    for case_id, mutate, expected in BROKEN:
        yield pytest.param(mutate, expected, id=case_id)


@pytest.mark.parametrize(("mutate", "expected"), list(broken_cases()))
def test_broken_variant_fails(
    compose_text: str, mutate: Callable[[str], str], expected: str
) -> None:
    broken = mutate(compose_text)
    assert broken != compose_text, "the mutation no longer applies to docker-compose.yml"
    problems = all_problems(broken)
    assert any(expected in problem for problem in problems), problems


def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "v", "EMPTY": ""}
    cases = {
        "${SET}": "v",
        "$SET-x": "v-x",
        "${UNSET:-d}": "d",
        "${EMPTY:-d}": "d",
        "${EMPTY-d}": "",
        "${SET:+alt}": "alt",
        "${UNSET+alt}": "",
        "$${SET}": "${SET}",
        "$$HOSTNAME": "$HOSTNAME",
    }
    assert {text: interpolate_text(text, env) for text in cases} == cases
    with pytest.raises(InterpolationError, match="EMPTY"):
        interpolate_text("${EMPTY:?needed}", env)
    assert interpolate_text("${EMPTY?needed}", env) == ""
