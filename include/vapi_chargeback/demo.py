"""``make demo``: a synthetic org, the emulator on loopback, the real DAG for last month.

Everything runs from the project folder: data in ``data/demo/``, Airflow in ``.airflow/``,
statements in ``output/``. Nothing leaves the machine: the DAG's deliver step mails a
debugging SMTP server on 127.0.0.1 that writes each message to ``output/_mail/``.

The shipped config says ``approval: auto``, so the run approves its own draft and the
month ends final and mailed; the demo says so, and where a person approves in the UI
when a config says ``approval: manual`` (the run then waits in its review task until
someone answers on the Required Actions page of ``make ui``).

The month before is published first, by the DAG's own steps in this process
(``runner.run_month``, a few seconds; approved too under ``approval: auto``), so the
statement has a previous month to explain its change against. The printout quotes the
published manifest only: the direct lines per rule that charged them (the shipped
``mapping_rules`` catch the demo org's listed pilot), its key figures and the three
largest movers of its ``variance`` block, and the totals in the demo org's reporting currency (EUR) from its
``fx`` block. The demo's EUR rates are synthetic (``demo_rates``): the shipped file is
used while it reaches the month, and extended into ``data/demo/config/`` once it does not.

Last, the daily DAG runs for the 20th of the month (``MTD_RUN_DAY``): the month to date
through the 19th against the shipped config's budgets, where the demo's Customer Support
has passed 80 % — so its owner's budget alert (finance copied) lands in ``output/_mail/``
beside the statements, once (``demo_mtd`` prints both from the published files).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from dateutil.relativedelta import relativedelta

from vapi_chargeback import demo_mtd, localrun
from vapi_chargeback.config import load_config
from vapi_chargeback.demo_rates import config_with_rates_through
from vapi_chargeback.period import StatementPeriod, last_complete_month
from vapi_chargeback.variance import EFFECTS

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = PROJECT_DIR / "include" / "config" / "chargeback.yaml"
DEMO_MONTHS = 3
DEMO_DATA = PROJECT_DIR / "data" / "demo"
MTD_RUN_DAY = 20
"""The demo's daily run stands on the 20th of the statement month: its month to date
covers the 1st to the 19th, when the demo's Customer Support has passed 80 % of budget."""
UI_URL = "http://127.0.0.1:8080/plugin/chargeback-statements"
REQUIRED_ACTIONS_URL = "http://127.0.0.1:8080/required_actions"
DEMO_APPROVER = "make demo (approval: auto in chargeback.yaml)"
"""Who approves the month before, which the demo publishes in-process, not through the DAG."""


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

    _step(f"1/6 demo org: {DEMO_MONTHS} months of calls from {data_start:%Y-%m}")
    run_config = _with_rates(args.config, month, config.timezone)
    if calls.exists():
        print(f"    reusing {calls.relative_to(PROJECT_DIR)}")
    else:
        calls.parent.mkdir(parents=True, exist_ok=True)
        localrun.generate_calls(calls, month=f"{data_start:%Y-%m}", months=DEMO_MONTHS, quiet=False)

    api_key = secrets.token_urlsafe(24)
    _step("2/6 starting vapi-emulator and a debugging mail server on loopback")
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
            config_path=run_config,
        )
        if smtp_port is not None:
            print(
                f"    mail: smtp://127.0.0.1:{smtp_port} keeps every message in {_rel(mail_dir)}/"
            )
            env["AIRFLOW_CONN_SMTP_DEFAULT"] = _smtp_connection(smtp_port)
        _step("3/6 preparing Airflow (SQLite in .airflow/)")
        localrun.migrate(env)
        previous = f"{first - relativedelta(months=1):%Y-%m}"
        _step(f"4/6 {previous}, the month to compare with, by the DAG's steps in this process")
        _publish_previous(previous, run_config, output_dir, base_url, api_key, config.approval)
        logical_date = first + relativedelta(months=1)
        _step(f"5/6 airflow dags test {localrun.DAG_ID} {logical_date} → statements for {month}")
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
        run_day = first.replace(day=MTD_RUN_DAY)
        _step(
            f"6/6 airflow dags test {localrun.DAILY_DAG_ID} {run_day} → {month} to date"
            f" (through the {MTD_RUN_DAY - 1}th), budget alerts"
        )
        started = time.monotonic()
        log = localrun.dags_test(
            run_day, env, log_name=f"demo-daily-{run_day}.log", dag_id=localrun.DAILY_DAG_ID
        )
        print(
            f"    done in {time.monotonic() - started:.1f} s; log: {log.relative_to(PROJECT_DIR)}"
        )

    _summary(output_dir / month)
    _charged_by(output_dir / month)
    _key_figures(output_dir / month)
    _movers(output_dir / month)
    _approval(config.approval, args.config)
    _delivery(output_dir, month, mail_dir, mailed=not args.no_mail)
    demo_mtd.month_to_date(output_dir, run_day, PROJECT_DIR)
    demo_mtd.alerts(output_dir, month, mail_dir, PROJECT_DIR, mailed=not args.no_mail)
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
            print(f"  {_rel(path)}")
    totals = manifest["totals"]
    fx = manifest.get("fx")
    converted = fx["cost_by_cost_center"] if fx else {}
    currency = f"{'cost ' + fx['currency']:>14}" if fx else ""
    print(f"\n  {'cost center':<28} {'cost USD':>12}{currency}")
    for cost_center, amount in totals["cost_by_cost_center_usd"].items():
        other = f" {_amount(converted.get(cost_center, '0'), fx):>13}" if fx else ""
        print(f"  {cost_center:<28} {Decimal(amount):>12,.2f}{other}")
    other = f" {_amount(fx['total'], fx):>13}" if fx else ""
    print(f"  {'total':<28} {Decimal(totals['cost_usd']):>12,.2f}{other}")
    if fx:
        dates = (
            f"{fx['first_date']} to {fx['rate_date']}" if "first_date" in fx else fx["rate_date"]
        )
        print(f"  at 1 USD = {fx['rate']} {fx['currency']} ({fx['rule']}, {dates}, {fx['source']})")
    reconciliation = manifest["reconciliation"]
    verdict = "OK" if reconciliation["ok"] else "MISMATCH"
    print(
        f"\n  reconciliation {verdict}: org total {reconciliation['org_total_usd']}"
        f" + fixed shared {reconciliation['shared_total_usd']}"
        f" = lines {reconciliation['lines_total_usd']}"
    )


CHARGED_BY_LABELS = {
    "mapping": "the mapping CSV",
    "variable": "the costCenter variable",
    "rule:metadata": "a metadata rule",
    "rule:name": "a name rule",
}
"""The manifest's ``totals.lines_by_charged_by`` keys, as the demo prints them."""


def _charged_by(folder: Path) -> None:
    """The direct lines per rule that charged them, from the manifest: the shipped config's
    ``mapping_rules`` at work (the demo org's listed pilot, tagged ``costCenter:
    operations``, charged by a metadata rule instead of left Unallocated)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    counts: dict[str, int] = manifest["totals"].get("lines_by_charged_by") or {}
    if not counts:
        return
    print("\n  Direct lines charged by (manifest.json totals.lines_by_charged_by):")
    for key, label in CHARGED_BY_LABELS.items():
        print(f"    {label:<24} {counts.get(key, 0):>5}")


def _amount(text: str, fx: dict[str, Any]) -> str:
    return f"{Decimal(text):,.{fx['minor_units']}f}"


def _with_rates(config: Path, month: str, timezone: str) -> Path:
    """The config to run: the shipped one while its rates reach the month's last day, else a
    copy in data/demo/config/ with the demo's rates for the days after (``demo_rates``)."""
    last_day = StatementPeriod.for_month(month, timezone).last_day
    run_config = config_with_rates_through(config, DEMO_DATA / "config", last_day)
    if run_config != config:
        print(
            f"    fx: {_rel(config.parent)}/ has no rates up to {last_day}; running"
            f" {_rel(run_config)} with synthetic demo rates added"
        )
    return run_config


def _publish_previous(
    month: str, config: Path, output_dir: Path, base_url: str, api_key: str, approval: str
) -> None:
    """Publish ``month`` unless it is published already, approved under ``approval: auto``
    as the DAG would approve it: the statement after it compares with it."""
    from vapi_chargeback.analytics.client import VapiAnalyticsClient
    from vapi_chargeback.pipeline import RunSettings, finalize_run
    from vapi_chargeback.published import read_published
    from vapi_chargeback.runner import run_month

    published = read_published(output_dir, month)
    if published is not None:
        print(f"    already published ({published.get('status', 'draft')}), kept")
        return
    settings = RunSettings(
        config_path=str(config),
        output_url=output_dir.as_uri(),
        default_output_url=output_dir.as_uri(),
        month=month,
        run_id=f"demo-previous-{month}",
    )
    started = time.monotonic()
    with VapiAnalyticsClient(base_url, api_key) as client:
        run = run_month(settings, client)
    if approval == "auto" and run.published is not None and run.published["status"] == "draft":
        finalize_run(
            run.run,
            approved_by=DEMO_APPROVER,
            approved_at=datetime.now(UTC),
            reviewed=run.published,
        )
    status = (read_published(output_dir, month) or {}).get("status", "draft")
    print(f"    published {month} ({status}) in {time.monotonic() - started:.1f} s")


def _key_figures(folder: Path) -> None:
    """The Summary's key figures as the manifest's ``key_figures`` block records them."""
    manifest = json.loads((folder / "manifest.json").read_text())
    figures = (manifest.get("key_figures") or {}).get("org")
    if not figures:
        print(
            "\n  Key figures: this manifest has no key_figures block (published before it existed)"
        )
        return
    print("\n  Key figures (manifest.json key_figures):")
    for label, value in _key_figure_rows(figures):
        print(f"    {label:<24} {value}")


def _key_figure_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    def share(value: str | None, sign: str = "") -> str:
        return "n/a" if value is None else f"{Decimal(value) * 100:{sign}.2f} %"

    def rate(value: str | None) -> str:
        return "n/a" if value is None else f"{Decimal(value):,.4f} USD"

    change = figures.get("change_usd")
    previous = figures.get("previous_period")
    rows = [
        ("total", f"{Decimal(figures['total_usd']):,.2f} USD"),
        (
            "% allocated",
            f"{share(figures.get('allocated_share_of_usage'))} of usage,"
            f" {share(figures.get('allocated_share_of_total'))} incl. pools",
        ),
        (
            f"change vs {previous}" if previous else "change",
            "no previous month published"
            if change is None
            else f"{Decimal(change):+,.2f} USD ({share(figures.get('change_share'), '+')})",
        ),
        ("$/minute", rate(figures.get("usd_per_minute"))),
        ("$/call", rate(figures.get("usd_per_call"))),
    ]
    if figures.get("usd_per_successful_call") is not None:
        rows.append(("$/successful call", rate(figures["usd_per_successful_call"])))
    return rows


def _movers(folder: Path, count: int = 3) -> None:
    """The largest movers against the previous month, from the manifest's ``variance`` block."""
    manifest = json.loads((folder / "manifest.json").read_text())
    if "variance" not in manifest:
        print("\n  Movers: this manifest has no variance block (published before it existed)")
        return
    block = manifest["variance"]
    if block is None:
        print("\n  Movers: no previous month was published to compare with")
        return
    org = block["org"]
    print(
        f"\n  Largest movers vs {block['previous_period']}"
        f" ({block.get('previous_statement_id') or 'as published'}):"
        f" total {Decimal(org['delta_usd']):+,.2f} USD = {_effects_text(org)}"
    )
    for rank, mover in enumerate(block["top_movers"][:count], start=1):
        name = mover.get("assistant_name") or mover["assistant_id"] or "(no assistant)"
        print(
            f"    {rank}. {mover['cost_center_id']} / {name}:"
            f" {Decimal(mover['delta_usd']):+,.2f} USD = {_effects_text(mover)}"
        )


def _effects_text(figures: dict[str, Any]) -> str:
    """The effects that are not zero, in the sheet's order: ``volume +1.00, rate −0.20``."""
    parts = [
        f"{name} {Decimal(figures[f'{name}_usd']):+,.2f}"
        for name in EFFECTS
        if Decimal(figures[f"{name}_usd"])
    ]
    return ", ".join(parts) or "no change"


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
