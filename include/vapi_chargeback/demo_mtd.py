"""``make demo``'s month-to-date printout: what the daily run published and which alerts went.

Quotes the published files only — the day's ``_mtd`` JSON and the month's ``_alerts``
ledger — as the statements page and the mails do, and points at the alert mail the
debugging mail server kept in ``output/_mail/``.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from email import policy
from email.parser import BytesParser
from pathlib import Path

from vapi_chargeback.budgets.alert_log import format_pct, ledger_path, read_alert_log
from vapi_chargeback.budgets.mtd import CostCenterMtd
from vapi_chargeback.budgets.outputs import read_mtd
from vapi_chargeback.money import HUNDRED

BAR_WIDTH = 20
ALERT_SUBJECT = "Budget alert:"


def month_to_date(output_dir: Path, run_day: date, project_dir: Path) -> None:
    """Each cost center's spend against its budget, through the day before ``run_day``."""
    through = run_day - timedelta(days=1)
    report = read_mtd(output_dir, through)
    if report is None:
        print(f"\nMonth to date: no figures through {through} (the daily run failed?)")
        return
    print(
        f"\nMonth to date of {report.period} as the daily run of {run_day} published it"
        f" ({_rel(output_dir / report.relative_json, project_dir)}):"
        f"\n  figures through {through}, day {report.elapsed_days} of {report.total_days}"
        f" ({report.timezone}); a bar is the budget, > past it"
    )
    print(
        f"\n  {'cost center':<18} {'spent USD':>10} {'budget USD':>11}  {'used':<{BAR_WIDTH + 2}}"
        f" {'%':>7} {'forecast USD':>13} {'%':>7}  crossed"
    )
    for center in report.cost_centers:
        print("  " + _row(center))
    print(f"\n  Forecast: {report.forecast_method}")


def _row(center: CostCenterMtd) -> str:
    budget = center.budget_usd
    head = f"{center.name[:18]:<18} {center.spent_usd:>10,.2f}"
    if budget is None:
        return f"{head} {'no budget':>11}"
    crossed = ", ".join(f"{format_pct(pct)} %" for pct in center.thresholds_crossed) or "—"
    if center.forecast_alert:
        crossed += "; forecast alert"
    return (
        f"{head} {budget:>11,.2f}  {_bar(center.used_pct or Decimal(0))}"
        f" {center.used_pct:>6.1f}% {center.forecast_usd:>13,.2f} {center.forecast_pct:>6.1f}%"
        f"  {crossed}"
    )


def _bar(used_pct: Decimal) -> str:
    """``[█████·····|]``-style: the bar is the budget; spend past it shows as ``>``."""
    filled = int(min(used_pct, HUNDRED) * BAR_WIDTH / HUNDRED)
    return "[" + "█" * filled + "·" * (BAR_WIDTH - filled) + ("]" if used_pct < HUNDRED else ">")


def alerts(
    output_dir: Path, period: str, mail_dir: Path, project_dir: Path, *, mailed: bool
) -> None:
    """The month's alert ledger and the alert mails the debugging server kept."""
    ledger = read_alert_log(output_dir, period)
    if ledger is None or not ledger.alerts:
        reason = "no mail server: --no-mail" if not mailed else "no threshold crossed"
        print(f"\nBudget alerts: none ({reason})")
        return
    print(f"\nBudget alerts ({_rel(ledger_path(output_dir, period), project_dir)}):")
    for record in sorted(ledger.alerts.values(), key=lambda r: (r.due_on, r.key)):
        copied = f", cc {', '.join(record.cc)}" if record.cc else ""
        print(
            f"  {record.status:<7} {record.key:<28} due {record.due_on} to"
            f" {record.recipient}{copied}"
        )
    mails = [path for path in sorted(mail_dir.glob("*.eml")) if _is_alert(path)]
    for path in mails:
        print(f"  mail: {_rel(path, project_dir)} — open it with any mail program")
    print(
        "  Each alert goes once a month: rerunning the demo sends no new alert (the ledger"
        " says sent)."
    )


def _is_alert(path: Path) -> bool:
    with path.open("rb") as handle:
        headers = BytesParser(policy=policy.default).parse(handle, headersonly=True)
    return ALERT_SUBJECT in str(headers.get("Subject", ""))


def _rel(path: Path, project_dir: Path) -> str:
    return str(path.relative_to(project_dir)) if path.is_relative_to(project_dir) else str(path)
