"""docker-compose.yml read as ``docker compose`` would, and its security findings, without Docker.

The interpolation follows the Compose Specification (``$$``, ``${NAME}``, ``:-``, ``:?``
…). :func:`security_problems` is what a reviewer checks in the file: the production auth
manager, no secret with a default or a literal value, ports on loopback unless configured,
Flower behind basic auth, the Vapi key only where tasks run, and the worker's connection
file written with proper escaping. tests/unit/test_docker_compose.py runs these on the real
file and on deliberately broken copies.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SECRET_NAME = re.compile(r"PASSWORD|SECRET(?!S_BACKEND)|FERNET|API_KEY|TOKEN|BASIC_AUTH")
"""Names of settings that hold secrets, in .env and in services' environments."""
LOOPBACK = "127.0.0.1"
WORKER = "airflow-worker"
INIT = "airflow-init"
EMULATOR = "vapi-emulator"
KEY_NAME = "VAPI_API_KEY"
KEY_USERS = {INIT, EMULATOR}
"""Services that may see the Vapi key: the init writes the worker's file, the emulator checks it."""
SECRETS_BACKEND = "airflow.secrets.local_filesystem.LocalFilesystemBackend"
HOSTILE_KEY = 'sk-"quoted"\\back\\slash\'$HOME{}%'
"""An API key with every character a hand-built JSON or URI string gets wrong."""

# Compose interpolation: $$ (a literal $), ${NAME}, ${NAME<op>word} with op one of
# :- - :? ? :+ +, and $NAME.
VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<word>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    """A required variable (``${NAME:?message}``) is unset, as ``docker compose`` reports it."""


def interpolate_text(text: str, env: dict[str, str]) -> str:
    """One string, interpolated by the Compose Specification's rules."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, word = match["op"], match["word"] or ""
        value = env.get(name)
        set_and_not_empty = bool(value)
        if op in (":-", "-"):
            use_default = not set_and_not_empty if op == ":-" else value is None
            return word if use_default else str(value)
        if op in (":?", "?"):
            missing = not set_and_not_empty if op == ":?" else value is None
            if missing:
                raise InterpolationError(f"required variable {name} is missing a value: {word}")
            return str(value)
        if op in (":+", "+"):
            present = set_and_not_empty if op == ":+" else value is not None
            return word if present else ""
        return value or ""

    return VARIABLE.sub(replace, text)


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """The whole document, interpolated; keys too, as compose does."""
    if isinstance(node, str):
        return interpolate_text(node, env)
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, dict):
        return {interpolate(k, env): interpolate(v, env) for k, v in node.items()}
    return node


def referenced_variables(text: str) -> set[str]:
    """Names of every variable the compose text interpolates (comments included, so strip them)."""
    names = set()
    for match in VARIABLE.finditer(text):
        if not match["escaped"]:
            names.add(match["braced"] or match["bare"])
    return names


def without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of a .env file; comments and blank lines skipped."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def security_problems(doc: dict[str, Any]) -> list[str]:
    """What a security review of the (uninterpolated) compose document finds, one sentence each."""
    from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager

    problems: list[str] = []
    services: dict[str, dict[str, Any]] = doc.get("services", {})
    common = doc.get("x-airflow-common", {}).get("environment", {})
    manager = str(common.get("AIRFLOW__CORE__AUTH_MANAGER", ""))
    if not _is_subclass(manager, FabAuthManager):
        problems.append(f"auth manager {manager!r} is not the FAB auth manager")
    if "${" not in str(common.get("AIRFLOW__API__BASE_URL", "")):
        problems.append("AIRFLOW__API__BASE_URL is fixed; it must be a setting")
    for name, service in services.items():
        environment = service.get("environment") or {}
        for key, value in environment.items() if isinstance(environment, dict) else []:
            problems += _secret_problems(name, str(key), value)
            if str(key).startswith("AIRFLOW_CONN_"):
                problems.append(
                    f"{name}: {key} in the environment; the connection belongs in the"
                    " worker's secrets file"
                )
            if KEY_NAME in str(value) and name not in KEY_USERS:
                problems.append(f"{name} is given {KEY_NAME}; only {sorted(KEY_USERS)} need it")
        for port in service.get("ports", []):
            parts = re.fullmatch(r"(\$\{[^}]*\}|[^:$]*):(\$\{[^}]*\}|[^:$]*):(.+)", str(port))
            host_ip = parts.group(1) if parts else ""
            if host_ip not in (LOOPBACK, f"${{{host_ip[2:-1].split(':')[0]}:-{LOOPBACK}}}"):
                problems.append(f"{name}: port {port} is published on every interface by default")
    flower = services.get("flower", {})
    auth = (flower.get("environment") or {}).get("AIRFLOW__CELERY__FLOWER_BASIC_AUTH")
    if flower and not (auth and "FLOWER_BASIC_AUTH" in str(flower.get("entrypoint"))):
        problems.append("flower has no basic auth, or starts without it")
    if flower and not flower.get("profiles"):
        problems.append("flower runs by default; it belongs under a profile")
    mounted = [
        n
        for n, s in services.items()
        if any("vapi-secrets" in str(v) for v in s.get("volumes", []))
    ]
    if sorted(mounted) != sorted({WORKER, INIT}):
        problems.append(
            f"the vapi-secrets volume is mounted by {sorted(mounted)}, not the worker and init"
        )
    return problems


def _is_subclass(path: str, base: type) -> bool:
    from importlib import import_module

    module, _, name = path.rpartition(".")
    try:
        found = getattr(import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return False
    return isinstance(found, type) and issubclass(found, base)


def _secret_problems(service: str, key: str, value: Any) -> list[str]:
    """A secret setting must come from .env with no default (``:?``), never a literal."""
    text = "" if value is None else str(value)
    problems = []
    for match in VARIABLE.finditer(text):
        name = match["braced"] or match["bare"]
        if name and SECRET_NAME.search(name) and match["op"] in (":-", "-") and match["word"]:
            problems.append(f"{service}: {key} has a default secret for {name}")
    if SECRET_NAME.search(key) and text and "${" not in text and not key.endswith("_FILE"):
        problems.append(f"{service}: {key} is a literal secret in the compose file")
    return problems


def connection_file_problems(resolved: dict[str, Any], conn_id: str, conn_type: str) -> list[str]:
    """Run the init service's connection writer with a hostile key and read the file back
    the way the worker does (its secrets backend and kwargs); the key must survive."""
    services = resolved.get("services", {})
    worker = services.get(WORKER, {}).get("environment") or {}
    if worker.get("AIRFLOW__WORKERS__SECRETS_BACKEND") != SECRETS_BACKEND:
        return [f"{WORKER} does not read connections with {SECRETS_BACKEND}"]
    path = json.loads(worker.get("AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS") or "{}").get(
        "connections_file_path", ""
    )
    command = "\n".join(map(str, services.get(INIT, {}).get("command") or []))
    writer = (
        re.search(r"python -c '([^']*" + re.escape(path) + r"[^']*)'", command) if path else None
    )
    if writer is None:
        return [f"{INIT} writes no connection file at {path!r} with `python -c`"]
    with tempfile.TemporaryDirectory() as work:
        target = Path(work) / "connections.json"
        env = {**os.environ, "VAPI_BASE_URL": "https://api.vapi.ai", KEY_NAME: HOSTILE_KEY}
        ran = subprocess.run(
            [sys.executable, "-c", writer.group(1).replace(path, str(target))],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if ran.returncode != 0:
            return [f"{INIT}'s connection writer failed: {ran.stderr.strip()[-300:]}"]
        from airflow.secrets.local_filesystem import LocalFilesystemBackend

        try:
            conn = LocalFilesystemBackend(connections_file_path=str(target)).get_connection(conn_id)
        except Exception as error:
            return [f"{INIT}'s connection file is unreadable: {error}"]
    if conn is None:
        return [f"{INIT}'s connection file has no connection {conn_id!r}"]
    found = (conn.conn_type, conn.host, conn.password)
    if found != (conn_type, "https://api.vapi.ai", HOSTILE_KEY):
        return [f"{INIT}'s connection file reads back as {found!r}"]
    return []
