"""``make demo``: a synthetic org, the emulator on loopback, the real DAG for last month.

Everything runs from the project folder: data in ``data/demo/``, Airflow in ``.airflow/``,
statements in ``output/``. Nothing leaves the machine: the DAG's deliver step mails a
debugging SMTP server on 127.0.0.1 that writes each message to ``output/_mail/``.

The shipped config says ``approval: auto``, so the run approves its own draft and the
month ends final and mailed; the demo says so, and where a person approves in the UI
when a config says ``approval: manual`` (the run then waits in its review task until
someone answers on the Required Actions page of ``make ui``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from dateutil.relativedelta import relativedelta

from vapi_chargeback import localrun
from vapi_chargeback.config import load_config
from vapi_chargeback.period import last_complete_month

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = PROJECT_DIR / "include" / "config" / "chargeback.yaml"
DEMO_MONTHS = 3
UI_URL = "http://127.0.0.1:8080/plugin/chargeback-statements"
REQUIRED_ACTIONS_URL = "http://127.0.0.1:8080/required_actions"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = load_config(args.config)
    month = args.month or last_complete_month(
        datetime.now().astimezone(),
        config.timezone,
        settlement_delay_hours=config.settlement_delay_hours,
    )
    first = date.fromisoformat(f"{month}-01")
    data_start = first - relativedelta(months=DEMO_MONTHS - 1)
    calls = PROJECT_DIR / "data" / "demo" / f"calls-{data_start:%Y-%m}-{DEMO_MONTHS}m.parquet"
    output_dir = PROJECT_DIR / "output"

    _step(f"1/4 demo org: {DEMO_MONTHS} months of calls from {data_start:%Y-%m}")
    if calls.exists():
        print(f"    reusing {calls.relative_to(PROJECT_DIR)}")
    else:
        calls.parent.mkdir(parents=True, exist_ok=True)
        localrun.generate_calls(calls, month=f"{data_start:%Y-%m}", months=DEMO_MONTHS, quiet=False)

    api_key = secrets.token_urlsafe(24)
    _step("2/4 starting vapi-emulator and a debugging mail server on loopback")
    emulator_log = PROJECT_DIR / ".airflow" / "demo-emulator.log"
    emulator_log.parent.mkdir(parents=True, exist_ok=True)
    mail_dir = output_dir / "_mail"
    with (
        localrun.serve_emulator([calls], api_key, log=emulator_log) as base_url,
        _mail_server(mail_dir, enabled=not args.no_mail) as smtp_port,
    ):
        print(f"    {base_url} (key generated for this run, never written)")
        env = localrun.airflow_env(
            project_dir=PROJECT_DIR,
            airflow_home=PROJECT_DIR / ".airflow",
            api_base_url=base_url,
            api_key=api_key,
            output_url=output_dir.as_uri(),
            config_path=args.config,
        )
        if smtp_port is not None:
            print(
                f"    mail: smtp://127.0.0.1:{smtp_port} keeps every message in {_rel(mail_dir)}/"
            )
            env["AIRFLOW_CONN_SMTP_DEFAULT"] = _smtp_connection(smtp_port)
        _step("3/4 preparing Airflow (SQLite in .airflow/)")
        localrun.migrate(env)
        logical_date = first + relativedelta(months=1)
        _step(f"4/4 airflow dags test {localrun.DAG_ID} {logical_date} → statements for {month}")
        if config.approval == "manual":
            print(
                f"    approval: manual in {_rel(args.config)}: the run waits in its review task"
                " until someone answers.\n    Start `make ui` in another terminal, sign in as"
                f" admin and approve (or reject) {month} at\n    {REQUIRED_ACTIONS_URL}",
                flush=True,
            )
        started = time.monotonic()
        log = localrun.dags_test(logical_date, env, log_name=f"demo-{month}.log")
        print(
            f"    done in {time.monotonic() - started:.1f} s; log: {log.relative_to(PROJECT_DIR)}"
        )

    _summary(output_dir / month)
    _approval(config.approval, args.config)
    _delivery(output_dir, month, mail_dir, mailed=not args.no_mail)
    print(
        f"\nStatements page: run `make ui`, open {UI_URL} (Browse → Chargeback statements)"
        "\n  and sign in as admin; the password is in"
        " .airflow/simple_auth_manager_passwords.json.generated"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make demo",
        description="Generate a demo org, serve it with vapi-emulator on 127.0.0.1 and run the "
        "real chargeback DAG for one month with `airflow dags test`.",
    )
    parser.add_argument(
        "--month",
        help="statement month YYYY-MM (default: the last complete month in the org time zone)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help=f"chargeback.yaml to use (default: {DEFAULT_CONFIG.relative_to(PROJECT_DIR)})",
    )
    parser.add_argument(
        "--no-mail",
        action="store_true",
        help="start no mail server: without the smtp_default connection the deliver step skips",
    )
    return parser


@contextlib.contextmanager
def _mail_server(folder: Path, *, enabled: bool) -> Iterator[int | None]:
    """A debugging SMTP server on 127.0.0.1 writing ``.eml`` files to ``folder``; yields its port."""
    if not enabled:
        yield None
        return
    from vapi_emulator.mailsink import LoopbackController, MailSink

    controller = LoopbackController(MailSink(folder))
    controller.start()
    try:
        yield int(controller.port)
    finally:
        controller.stop()


def _smtp_connection(port: int) -> str:
    """``smtp_default`` for the debugging server: plain SMTP on loopback, no TLS, no login."""
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10},
        }
    )


def _approval(approval: str, config: Path) -> None:
    """Who approved, and where a person does it."""
    if approval == "auto":
        print(
            f"\nApproval: approval: auto in {_rel(config)}, so the run approved its own draft."
            "\n  A real org sets approval: manual: the run then waits in its review task and"
            " finance\n  approves or rejects the month in the Airflow UI (`make ui`) at"
            f" {REQUIRED_ACTIONS_URL}"
        )
    else:
        print(f"\nApproval: in the Airflow UI (`make ui`) at {REQUIRED_ACTIONS_URL}")


def _delivery(output_dir: Path, month: str, mail_dir: Path, *, mailed: bool) -> None:
    """Who got which files, from the month's delivery log, and where the mails are."""
    from vapi_chargeback.delivery import read_log

    log = read_log(output_dir, month)
    if log is None:
        manifest = json.loads((output_dir / month / "manifest.json").read_text())
        reason = (
            "no mail server; run without --no-mail to send"
            if not mailed
            else f"{month} is a {manifest.get('status', 'draft')}: only a final month is mailed"
        )
        print(f"\nDelivery: skipped ({reason})")
        return
    print(f"\nDelivery log ({_rel(output_dir / '_delivery' / f'{month}.json')}):")
    for record in log.messages.values():
        files = ", ".join(item.name for item in record.attachments)
        print(f"  {record.status:<8} {record.recipient:<28} {files}")
    if mailed and mail_dir.exists():
        mails = sorted(mail_dir.glob("*.eml"))
        print(
            f"  {len(mails)} mail(s) in {_rel(mail_dir)}/ — open an .eml file with any mail program"
        )
    print(
        "  A month is mailed once: rerunning the demo sends nothing new (trigger the DAG with"
        " redeliver=true to send again)."
    )


def _rel(path: Path) -> str:
    return str(path.relative_to(PROJECT_DIR)) if path.is_relative_to(PROJECT_DIR) else str(path)


def _summary(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    print(f"\nStatements for {manifest['period']} ({manifest['timezone']}):")
    ids = manifest.get("statement_ids") or {}
    status = f"{manifest.get('status', 'draft')} v{manifest.get('version', 1)}"
    if manifest.get("approved_by"):
        status += f", approved by {manifest['approved_by']} at {manifest['approved_at']}"
    print(f"  {status}; statement {ids.get('org', '(no id)')}")
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            print(f"  {path.relative_to(PROJECT_DIR)}")
    totals = manifest["totals"]
    print(f"\n  {'cost center':<28} {'cost USD':>12}")
    for cost_center, amount in totals["cost_by_cost_center_usd"].items():
        print(f"  {cost_center:<28} {Decimal(amount):>12,.2f}")
    print(f"  {'total':<28} {Decimal(totals['cost_usd']):>12,.2f}")
    reconciliation = manifest["reconciliation"]
    verdict = "OK" if reconciliation["ok"] else "MISMATCH"
    print(
        f"\n  reconciliation {verdict}: org total {reconciliation['org_total_usd']}"
        f" + fixed shared {reconciliation['shared_total_usd']}"
        f" = lines {reconciliation['lines_total_usd']}"
    )


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
