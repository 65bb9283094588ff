"""The deliver task against a real SMTP server on loopback, through Airflow's SMTP hook.

aiosmtpd listens on 127.0.0.1 (a port the kernel picks); the connection ``smtp_default``
comes from ``AIRFLOW_CONN_SMTP_DEFAULT`` (no database). Each test runs the task body the
DAG runs — ``deliver_task`` — so connection lookup, TLS options, the from-address, the
params and the core are exercised together, and checks what the server actually got:
who, which attachments, and whether the attached workbooks add up to the manifest.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import socket
import ssl
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import yaml
from airflow.sdk.exceptions import AirflowSkipException
from dateutil.relativedelta import relativedelta

from vapi_chargeback.airflow.delivery import deliver_task
from vapi_chargeback.delivery import (
    DeliveryError,
    DeliveryRefusedError,
    DeliverySetupError,
    read_log,
)
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.statement import (
    DRAFT,
    FINAL,
    UNALLOCATED,
    ChargebackLine,
    CostCenterInfo,
    Provenance,
    Reconciliation,
    Statement,
)
from vapi_chargeback.storage import publish_statement, read_published
from vapi_emulator.mailsink import LoopbackController, MailSink

PERIOD = "2026-10"
FROM = "chargeback@example.com"
FINANCE = "finance@example.com"
OWNERS = {"sales": "sales-owner@example.com", "support": "support-owner@example.com"}
RUN_ID = "manual__2026-11-02T07:00:00+00:00"
BERLIN = ZoneInfo("Europe/Berlin")

pytestmark = pytest.mark.timeout(120)


class ScriptedSmtp(MailSink):
    """Keeps what it accepts; answers RCPT for an address with scripted replies, last one repeats."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: dict[str, list[str]] = {}
        self.rcpt_tries: list[str] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        self.rcpt_tries.append(address)
        scripted = self.replies.get(address, [])
        reply = scripted.pop(0) if len(scripted) > 1 else (scripted[0] if scripted else "250 OK")
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    def by_recipient(self) -> dict[str, EmailMessage]:
        return {mail.recipients[0]: mail.message for mail in self.received}


@dataclass
class Setup:
    output: Path
    config_path: Path
    server: ScriptedSmtp
    port: int

    def run(self, run_id: str = RUN_ID, **params: Any) -> dict[str, Any]:
        """The DAG's deliver task body for October, as Airflow calls it in run ``run_id``."""
        context = {"params": {"deliver": True, "redeliver": False, **params}}
        return deliver_task(context, run_info(self, run_id))


def statement(period: str, centers: dict[str, str], scale: int, *, final: bool = True) -> Statement:
    """Per cost center two direct lines and a shared one; one unallocated line; reconciles.

    Approved (final) unless ``final`` is false: only a final month is mailed by default.
    """
    lines = []
    for index, center in enumerate(centers):
        for number, cost in enumerate(("12.34", "56.78")):
            amount = Decimal(cost) * scale + index
            lines.append(
                ChargebackLine(
                    center,
                    center.title(),
                    "team",
                    f"asst-{center}-{number}",
                    "direct",
                    10,
                    Decimal("25.5"),
                    amount,
                    {"llm": Decimal("1.00")},
                )
            )
        lines.append(
            ChargebackLine(
                center,
                center.title(),
                "",
                "",
                "shared:platform-fee",
                0,
                Decimal(0),
                Decimal("5.00"),
                {"llm": Decimal("0.00")},
            )
        )
    lines.append(
        ChargebackLine(
            UNALLOCATED,
            "Unallocated",
            "",
            "",
            "unallocated:no-assistant",
            1,
            Decimal(1),
            Decimal("0.99"),
            {"llm": Decimal("0.00")},
        )
    )
    total = sum((line.cost_usd for line in lines), Decimal(0))
    shared = Decimal("5.00") * len(centers)
    start = dt.datetime.strptime(period, "%Y-%m").replace(tzinfo=BERLIN)
    return Statement(
        period=period,
        timezone="Europe/Berlin",
        period_start=start,
        period_end=start + relativedelta(months=1),
        currency="USD",
        components=["llm"],
        cost_centers=[CostCenterInfo(c, c.title(), mail) for c, mail in centers.items()],
        lines=lines,
        reconciliation=Reconciliation(total - shared, shared, total, Decimal("0.00")),
        provenance=Provenance("run-p", "a" * 64, "b" * 64, {"batch-000.json": "c" * 64}, "test"),
        status=FINAL if final else DRAFT,
        approved_by="Fiona Finance" if final else None,
        approved_at=dt.datetime(2026, 11, 3, 9, 30, tzinfo=dt.UTC) if final else None,
    )


def write_config(
    path: Path, owners: dict[str, str] = OWNERS, *, deliver_drafts: bool = False, **delivery: Any
) -> None:
    document = {
        "org": {"name": "Test Org", "timezone": "Europe/Berlin"},
        "components": ["llm"],
        "variable_key": "costCenter",
        "finance_email": FINANCE,
        "cost_centers": [
            {"id": center, "name": center.title(), "owner_email": mail}
            for center, mail in owners.items()
        ],
        "delivery": {"from_email": FROM, "retry_backoff_seconds": 1, **delivery},
        "deliver_drafts": deliver_drafts,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def run_info(setup: Setup, run_id: str) -> dict[str, Any]:
    """What the plan task hands the deliver task, for a run of October."""
    return {
        "month": PERIOD,
        "timezone": "Europe/Berlin",
        "period_start": "2026-10-01T00:00:00+02:00",
        "period_end": "2026-11-01T00:00:00+01:00",
        "run_id": run_id,
        "config_path": str(setup.config_path),
        "mapping_path": str(setup.config_path.parent / "assistant_teams.csv"),
        "config_sha256": "0" * 64,
        "mapping_sha256": "0" * 64,
        "output_url": setup.output.as_uri(),
        "work_url": (setup.output / "_runs" / PERIOD / "run").as_uri(),
        "batch_count": 1,
        "query_count": 1,
    }


def smtp_connection(port: int, **extra: Any) -> str:
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10, **extra},
        }
    )


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    output = tmp_path / "output"
    publish_statement(statement("2026-09", OWNERS, scale=1), output)
    publish_statement(statement(PERIOD, OWNERS, scale=2), output)
    config_path = tmp_path / "chargeback.yaml"
    write_config(config_path)
    server = ScriptedSmtp()
    controller = LoopbackController(server)
    controller.start()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(controller.port))
    try:
        yield Setup(output, config_path, server, controller.port)
    finally:
        controller.stop()


def sheet_rows(data: bytes, sheet: str) -> list[tuple[Any, ...]]:
    """The sheet's table from its header row on (below the Summary's title block)."""
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    rows = [tuple(row) for row in workbook[sheet].iter_rows(values_only=True)]
    return rows[next(index for index, row in enumerate(rows) if "Cost (USD)" in row) :]


def attachments(message: EmailMessage) -> dict[str, bytes]:
    """File name → the bytes as sent (decoded from the transfer encoding, not as text)."""
    return {
        part.get_filename() or "": part.get_payload(decode=True)
        for part in message.iter_attachments()
    }


def test_owners_and_finance_get_their_workbooks_and_the_figures_match_the_manifest(
    setup: Setup,
) -> None:
    report = setup.run()

    manifest = read_published(setup.output, PERIOD)
    assert manifest is not None
    mails = setup.server.by_recipient()
    assert set(mails) == {FINANCE, *OWNERS.values()}
    assert {mail.envelope_from for mail in setup.server.received} == {FROM}
    assert report["sent"] == ["finance", "owner:sales", "owner:support"]

    by_center = manifest["totals"]["cost_by_cost_center_usd"]
    for center, owner in OWNERS.items():
        files = attachments(mails[owner])
        assert list(files) == [f"{center}-{PERIOD}.xlsx"]
        published = setup.output / PERIOD / "cost-centers" / f"{center}-{PERIOD}.xlsx"
        assert files[f"{center}-{PERIOD}.xlsx"] == published.read_bytes()
        summary = sheet_rows(files[f"{center}-{PERIOD}.xlsx"], "Summary")
        header, total = summary[0], next(row for row in summary if row[0] == "Total")
        cost = Decimal(str(total[header.index("Cost (USD)")])).quantize(Decimal("0.01"))
        assert cost == Decimal(by_center[center]), center
        assert by_center[center] in mails[owner]["Subject"]

    files = attachments(mails[FINANCE])
    assert sorted(files) == [f"chargeback-{PERIOD}.csv", f"chargeback-{PERIOD}.xlsx"]
    for name, data in files.items():
        assert data == (setup.output / PERIOD / name).read_bytes(), f"{name} arrived changed"
    summary = sheet_rows(files[f"chargeback-{PERIOD}.xlsx"], "Summary")
    header = summary[0]
    cost_column = header.index("Cost (USD)")
    figures = {
        row[0]: Decimal(str(row[cost_column])).quantize(Decimal("0.01"))
        for row in summary[1:]
        if row[0] and row[cost_column] is not None
    }
    assert figures["Total"] == Decimal(manifest["totals"]["cost_usd"])
    for center, amount in by_center.items():
        assert figures[center] == Decimal(amount), center

    log = json.loads((setup.output / PERIOD / "delivery.json").read_text())
    ids = {mail.message["To"]: mail.message["Message-ID"] for mail in setup.server.received}
    assert {r["recipient"]: r["message_id"] for r in log["messages"].values()} == ids
    assert {r["status"] for r in log["messages"].values()} == {"sent"}


def test_a_refused_owner_is_reported_a_greylisted_one_retried_the_rest_delivered(
    setup: Setup,
) -> None:
    sales, support = OWNERS["sales"], OWNERS["support"]
    setup.server.replies = {
        sales: ["451 4.7.1 Greylisted, try again later", "250 OK"],
        support: ["550 5.1.1 <support-owner@example.com>: no such user"],
    }

    with pytest.raises(DeliveryError, match=r"owner:support \(support-owner@example.com: .*550"):
        setup.run()

    assert sorted(setup.server.by_recipient()) == sorted([FINANCE, sales])
    assert setup.server.rcpt_tries == [FINANCE, sales, support, sales]
    log = read_log(setup.output, PERIOD)
    assert log is not None
    assert (log.messages["owner:sales"].status, log.messages["owner:sales"].attempts) == ("sent", 2)
    refused = log.messages["owner:support"]
    assert (refused.status, refused.permanent) == ("failed", True)
    assert "550 5.1.1" in (refused.error or "")

    # The mailbox now exists; Airflow retries the task, which sends only what is missing.
    setup.server.replies = {}
    report = setup.run()
    assert report["sent"] == ["owner:support"]
    assert report["skipped"] == ["finance", "owner:sales"]
    assert [mail.recipients for mail in setup.server.received].count((support,)) == 1
    assert len(setup.server.received) == 3


def test_a_rerun_sends_nothing_and_redeliver_sends_everything_again(setup: Setup) -> None:
    setup.run()
    first_ids = {mail.message["Message-ID"] for mail in setup.server.received}

    again = setup.run(run_id="manual__rerun")
    assert again["sent"] == []
    assert len(setup.server.received) == 3

    forced = setup.run(run_id="manual__redeliver", redeliver=True)
    assert forced["sent"] == ["finance", "owner:sales", "owner:support"]
    assert len(setup.server.received) == 6
    second_ids = {mail.message["Message-ID"] for mail in setup.server.received[3:]}
    assert not first_ids & second_ids


def test_a_draft_month_is_skipped_with_nothing_mailed(setup: Setup) -> None:
    """Rejected or not yet approved: the run ends with deliver skipped, saying why."""
    publish_statement(statement(PERIOD, OWNERS, scale=2, final=False), setup.output)

    with pytest.raises(AirflowSkipException, match=r"2026-10 v1 is a draft, not approved"):
        setup.run()

    assert setup.server.received == []
    assert read_log(setup.output, PERIOD) is None


def test_with_deliver_drafts_a_draft_is_mailed_marked_draft_with_its_statement_ids(
    setup: Setup,
) -> None:
    publish_statement(statement(PERIOD, OWNERS, scale=2, final=False), setup.output)
    write_config(setup.config_path, deliver_drafts=True)

    setup.run()

    mails = setup.server.by_recipient()
    assert mails[FINANCE]["Subject"].startswith(
        "[Vapi chargeback] DRAFT 2026-10 statements VAPI-2026-10-ORG-v1: "
    )
    for center, owner in OWNERS.items():
        assert (
            f" DRAFT {center.title()}: 2026-10 statement VAPI-2026-10-{center}-v1,"
            in (mails[owner]["Subject"])
        )
        text = mails[owner].get_body(("plain",))
        assert text is not None and "This is a DRAFT for review" in text.get_content()


def per_recipient(mails: list[Any]) -> Counter[str]:
    return Counter(recipient for mail in mails for recipient in mail.recipients)


def test_a_redeliver_run_whose_first_try_hits_a_550_sends_each_healthy_recipient_one_mail(
    setup: Setup,
) -> None:
    """Issue 17: four task tries of one redeliver run mailed the four healthy recipients 16 times.

    Finance and four owners, all delivered once by an earlier run; then the support
    mailbox is deleted and a run with ``redeliver=true`` is tried four times (as Airflow
    would, or a person clearing the task), then once more after the mailbox is back.
    """
    owners = {
        center: f"{center}-owner@example.com" for center in ("sales", "support", "legal", "ops")
    }
    publish_statement(statement(PERIOD, owners, scale=2), setup.output)
    write_config(setup.config_path, owners)
    refused = owners["support"]
    healthy = [FINANCE, owners["sales"], owners["legal"], owners["ops"]]
    setup.run(run_id="scheduled__2026-10-01T00:00:00+00:00")
    assert per_recipient(setup.server.received) == Counter([*healthy, refused])
    before, asked_before = len(setup.server.received), len(setup.server.rcpt_tries)

    redelivery = "manual__2026-11-20T09:00:00+00:00"
    setup.server.replies = {refused: [f"550 5.1.1 <{refused}>: no such user"]}
    for _ in range(4):
        with pytest.raises(DeliveryRefusedError, match=r"owner:support .*550 5\.1\.1"):
            setup.run(run_id=redelivery, redeliver=True)

    assert per_recipient(setup.server.received[before:]) == Counter(healthy)
    asked = Counter(setup.server.rcpt_tries[asked_before:])
    assert asked == Counter([*healthy, *[refused] * 4]), "the retries ask only for the refused one"
    log = read_log(setup.output, PERIOD)
    assert log is not None
    waiting = log.messages["owner:support"]
    assert (waiting.status, waiting.attempts, waiting.run_id) == ("failed", 4, redelivery)
    assert len(log.superseded) == 5, "the earlier run's records, each kept once"

    setup.server.replies = {}  # the mailbox is back; the task is cleared
    report = setup.run(run_id=redelivery, redeliver=True)
    assert report["sent"] == ["owner:support"]
    this_run = setup.server.received[before:]
    assert per_recipient(this_run) == Counter([*healthy, refused])
    (late,) = [mail for mail in this_run if mail.recipients == (refused,)]
    assert late.message["Message-ID"] == waiting.message_id, "same message across the tries"
    redelivered_ids = {mail.message["Message-ID"] for mail in this_run}

    # A new run with redeliver sends everything once more, as new messages, and its
    # own retry sends nothing.
    second = "manual__2026-12-01T09:00:00+00:00"
    assert len(setup.run(run_id=second, redeliver=True)["sent"]) == 5
    assert setup.run(run_id=second, redeliver=True)["sent"] == []
    latest = setup.server.received[before + len(this_run) :]
    assert per_recipient(latest) == Counter([*healthy, refused])
    assert not {mail.message["Message-ID"] for mail in latest} & redelivered_ids


def closed_port() -> socket.socket:
    """A loopback socket bound but not listening: connecting to its port is refused."""
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    return blocker


@pytest.mark.parametrize(
    ("replies", "refuse_connection", "permanent"),
    [
        pytest.param({"support": "550 5.1.1 no such user"}, False, True, id="550-only"),
        pytest.param(
            {"support": "550 5.1.1 no such user", "sales": "554 5.7.1 rejected"},
            False,
            True,
            id="550-and-554",
        ),
        pytest.param({"support": "451 4.7.1 greylisted"}, False, False, id="451-only"),
        pytest.param(
            {"support": "550 5.1.1 no such user", "sales": "451 4.7.1 greylisted"},
            False,
            False,
            id="550-and-451",
        ),
        pytest.param({}, True, False, id="connection-refused"),
    ],
)
def test_only_permanent_refusals_fail_the_task_for_good(
    setup: Setup,
    monkeypatch: pytest.MonkeyPatch,
    replies: dict[str, str],
    refuse_connection: bool,
    permanent: bool,
) -> None:
    """A ``PermanentError`` is not retried by Airflow; one temporary failure keeps the retry."""
    write_config(setup.config_path, max_attempts=1)
    setup.server.replies = {OWNERS[center]: [reply] for center, reply in replies.items()}
    with contextlib.ExitStack() as stack:
        if refuse_connection:
            blocker = stack.enter_context(closed_port())
            monkeypatch.setenv(
                "AIRFLOW_CONN_SMTP_DEFAULT",
                smtp_connection(blocker.getsockname()[1], retry_limit=0),
            )
        with pytest.raises(DeliveryError) as caught:
            setup.run()

    assert isinstance(caught.value, PermanentError) is permanent
    assert isinstance(caught.value, DeliveryRefusedError) is permanent
    everyone = ["finance", *(f"owner:{center}" for center in OWNERS)]
    expected = [f"owner:{center}" for center in replies] if replies else everyone
    assert sorted(caught.value.report.failed) == sorted(expected)
    assert caught.value.report.refused == sorted(
        f"owner:{center}" for center, reply in replies.items() if reply.startswith("5")
    )


def test_no_from_address_fails_for_good_with_a_clear_message(setup: Setup) -> None:
    write_config(setup.config_path, from_email=None)

    with pytest.raises(DeliverySetupError, match="no from-address for delivery: set") as caught:
        setup.run()

    assert isinstance(caught.value, PermanentError)
    assert "extra 'from_email' of connection 'smtp_default'" in str(caught.value)
    assert setup.server.received == []


def test_the_task_skips_when_asked_or_when_there_is_no_smtp_connection(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    with pytest.raises(AirflowSkipException, match="deliver=false"):
        setup.run(deliver=False)
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT")
    with pytest.raises(AirflowSkipException, match="no Airflow connection 'smtp_default'"):
        setup.run()
    assert setup.server.received == []
    assert read_log(setup.output, PERIOD) is None


def test_the_from_address_may_come_from_the_connection(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(setup.config_path, from_email=None)
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(setup.port, from_email="noreply@example.com")
    )

    setup.run()

    assert {mail.envelope_from for mail in setup.server.received} == {"noreply@example.com"}


def self_signed_tls_context(folder: Path) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for 127.0.0.1."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


def test_starttls_is_used_when_the_connection_asks_for_it(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``disable_tls: false`` → STARTTLS; ``ssl_context: none`` accepts the self-signed cert."""
    server = ScriptedSmtp()
    controller = LoopbackController(
        server, tls_context=self_signed_tls_context(tmp_path), require_starttls=True
    )
    controller.start()
    try:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SMTP_DEFAULT",
            smtp_connection(controller.port, disable_tls=False, ssl_context="none"),
        )
        setup.run()
        plain = setup.server
        assert plain.received == []
        assert len(server.received) == 3
    finally:
        controller.stop()


def test_a_certificate_the_client_cannot_verify_fails_the_delivery(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default ``ssl_context`` checks the server certificate: nothing goes out unverified."""
    write_config(setup.config_path, max_attempts=1)
    server = ScriptedSmtp()
    controller = LoopbackController(
        server, tls_context=self_signed_tls_context(tmp_path), require_starttls=True
    )
    controller.start()
    try:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(controller.port, disable_tls=False)
        )
        with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            setup.run()
        assert server.received == []
    finally:
        controller.stop()
