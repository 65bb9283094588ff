"""A real ``airflow api-server`` with the project's plugin and statements to show.

The api-server runs as its own process from a temporary AIRFLOW_HOME (SQLite, migrated
once per session) with the FAB auth manager compose runs, the chargeback roles and two
users, as compose's init makes them: ``fiona`` (role ``Chargeback Finance``) and
``oscar`` (role ``Chargeback Owner``, the e-mail chargeback.yaml gives the sales cost
center's owner), with passwords made for the run. It reads statements from a temporary
output folder through the Variable ``vapi_chargeback_output`` — as in production —
holding three published months, two of them delivered.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from dateutil.relativedelta import relativedelta

from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.delivery import DeliveryError, PermanentSendError, deliver_month
from vapi_chargeback.localrun import free_port
from vapi_chargeback.statement import (
    FINAL,
    UNALLOCATED,
    ChargebackLine,
    CostCenterInfo,
    Provenance,
    Reconciliation,
    Statement,
)
from vapi_chargeback.storage import publish_statement

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "test-artifacts"
MONTHS = ("2026-08", "2026-09", "2026-10")
FINANCE = "fiona"
OWNER = "oscar"
OWNER_CENTER = "sales"
FAB_AUTH_MANAGER = "vapi_chargeback.airflow.auth_manager.ChargebackFabAuthManager"
START_TIMEOUT_S = 90.0
BERLIN = ZoneInfo("Europe/Berlin")
CENTERS = {
    "sales": ("Sales", "sales-ops@example.com", ["inbound", "outbound"]),
    "support": ("Customer Support", "support-lead@example.com", ["tier-1", "tier-2"]),
    "marketing": ("Marketing", "marketing@example.com", ["campaigns"]),
    "operations": ("Operations", "ops@example.com", ["dispatch", "back-office"]),
}


@dataclass(frozen=True)
class ApiServer:
    url: str
    output: Path
    passwords: dict[str, str]
    """User name → password, for :data:`FINANCE` and :data:`OWNER`."""
    log: Path


def statement(period: str, step: int) -> Statement:
    """Four cost centers, a few assistants each, a shared pool and unallocated calls."""
    lines = []
    for index, (center, (name, _, teams)) in enumerate(CENTERS.items()):
        for number, team in enumerate(teams):
            for assistant in range(3):
                cost = Decimal(137 + 61 * index + 23 * number + 7 * assistant + 11 * step)
                lines.append(
                    ChargebackLine(
                        center,
                        name,
                        team,
                        f"asst-{center}-{number}{assistant}",
                        "direct",
                        40 + assistant,
                        cost / 3,
                        cost + Decimal("0.25"),
                        {"llm": cost / 4},
                    )
                )
        lines.append(
            ChargebackLine(
                center,
                name,
                "",
                "",
                "shared:platform-fee",
                0,
                Decimal(0),
                Decimal("125.00"),
                {"llm": Decimal(0)},
            )
        )
    lines.append(
        ChargebackLine(
            UNALLOCATED,
            "Unallocated",
            "",
            "asst-unmapped",
            "unallocated:unmapped-assistant",
            12,
            Decimal(30),
            Decimal("84.35") + step,
            {"llm": Decimal(20)},
        )
    )
    total = sum((line.cost_usd for line in lines), Decimal(0))
    shared = Decimal("125.00") * len(CENTERS)
    start = datetime.strptime(period, "%Y-%m").replace(tzinfo=BERLIN)
    return Statement(
        period=period,
        timezone="Europe/Berlin",
        period_start=start,
        period_end=start + relativedelta(months=1),
        currency="USD",
        components=["llm"],
        cost_centers=[CostCenterInfo(c, name, mail) for c, (name, mail, _) in CENTERS.items()],
        lines=lines,
        reconciliation=Reconciliation(total - shared, shared, total, Decimal("0.00")),
        provenance=Provenance(
            f"scheduled__{period}", "a" * 64, "b" * 64, {"batch-000.json": "c" * 64}, "test"
        ),
    )


class Outbox:
    """Accepts every message except those to ``refuse``: enough to give the page a history."""

    def __init__(self, refuse: str | None = None) -> None:
        self.refuse = refuse

    def send(self, message: EmailMessage, *, envelope_from: str, recipients: Sequence[str]) -> None:
        if self.refuse in recipients:
            raise PermanentSendError(f"550 5.1.1 {self.refuse}: no such user")


def publish_demo_months(output: Path) -> None:
    config = ChargebackConfig.model_validate(
        {
            "org": {"name": "Browser Test Org", "timezone": "Europe/Berlin"},
            "components": ["llm"],
            "variable_key": "costCenter",
            "finance_email": "finance@example.com",
            "cost_centers": [
                {"id": c, "name": name, "owner_email": mail}
                for c, (name, mail, _) in CENTERS.items()
            ],
        }
    )
    for step, period in enumerate(MONTHS):
        # Approved: only a final month is mailed.
        final = replace(
            statement(period, step),
            status=FINAL,
            approved_by="Fiona Finance",
            approved_at=datetime(2026, 11, 3, tzinfo=UTC),
        )
        publish_statement(final, output)
    deliver_month(output, "2026-10", config, Outbox(), from_address="cb@example.com", run_id="r")
    # One owner refused in September: the page shows that month as partly delivered.
    with contextlib.suppress(DeliveryError):
        deliver_month(
            output,
            "2026-09",
            config,
            Outbox(refuse="ops@example.com"),
            from_address="cb@example.com",
            run_id="r",
        )


@contextlib.contextmanager
def api_server(work: Path) -> Iterator[ApiServer]:
    """Migrate a fresh SQLite home under ``work``, publish statements, run the api-server."""
    home = work / "airflow-home"
    output = work / "statements"
    home.mkdir()
    publish_demo_months(output)
    passwords = {FINANCE: secrets.token_urlsafe(12), OWNER: secrets.token_urlsafe(12)}
    users = [
        {
            "username": FINANCE,
            "password": passwords[FINANCE],
            "email": "fiona@example.com",
            "roles": ["Chargeback Finance"],
        },
        {
            "username": OWNER,
            "password": passwords[OWNER],
            "email": CENTERS[OWNER_CENTER][1],
            "roles": ["Chargeback Owner"],
        },
    ]
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER,
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
        "PYTHONPATH": str(ROOT / "include"),
        "AIRFLOW_VAR_VAPI_CHARGEBACK_OUTPUT": output.as_uri(),
        "AIRFLOW_VAR_VAPI_CHARGEBACK_CONFIG": str(ROOT / "include" / "config" / "chargeback.yaml"),
    }
    log = home / "api-server.log"
    subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    subprocess.run(
        [str(BIN / "python"), str(ROOT / "tests" / "support" / "fab_users.py")],
        input=json.dumps(users).encode(),
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    command = [str(BIN / "airflow"), "api-server", "--apps", "core"]
    command += ["-H", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as sink:
        # Its own process group, so stopping it also stops the server processes it forks.
        process = subprocess.Popen(
            command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, process, log)
            yield ApiServer(url, output, passwords, log)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"api-server exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/api/v2/monitor/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"api-server not healthy on {url} in {START_TIMEOUT_S} s; log: {log}")
