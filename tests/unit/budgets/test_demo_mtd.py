"""``make demo``'s month-to-date printout, from published files only."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from vapi_chargeback import demo_mtd
from vapi_chargeback.budgets.alerts import send_alerts

from support.mtd_samples import RecordingSender, center, config, report


def test_prints_each_budget_bar_and_the_alert_mail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "output"
    mtd = report(
        center("support", "880.00", forecast="1500.00"),
        center("sales", "900.00", forecast="2000.00"),
        center("ops", "12.00"),
    )
    (output / mtd.relative_json).parent.mkdir(parents=True)
    (output / mtd.relative_json).write_bytes(mtd.to_json())
    sender = RecordingSender()
    send_alerts(output, mtd, config(), sender, from_address="c@example.com", run_id="r")
    mail = output / "_mail"
    mail.mkdir()
    (mail / "0001-finance.eml").write_bytes(b"Subject: [Vapi chargeback] statements\n\nx\n")
    (mail / "0002-support.eml").write_bytes(sender.accepted[0][1].as_bytes())

    demo_mtd.month_to_date(output, date(2026, 10, 11), tmp_path)
    demo_mtd.alerts(output, "2026-10", mail, tmp_path, mailed=True)
    printed = capsys.readouterr().out

    assert "figures through 2026-10-10, day 10 of 31 (Europe/Berlin)" in printed
    lines = {line.split()[0]: line for line in printed.splitlines() if line.startswith("  ")}
    assert "[" + "█" * 17 + "···]   88.0%" in lines["Customer"]
    assert lines["Customer"].endswith("50 %, 80 %; forecast alert")
    assert lines["Sales"].endswith("—") and "18.0%" in lines["Sales"]
    assert "no budget" in lines["Operations"]
    assert "sent    support:threshold:80" in printed
    assert "cc finance@example.com" in printed
    assert "mail: output/_mail/0002-support.eml" in printed
    assert "0001-finance.eml" not in printed


def test_says_why_there_is_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    demo_mtd.month_to_date(tmp_path, date(2026, 10, 11), tmp_path)
    demo_mtd.alerts(tmp_path, "2026-10", tmp_path, tmp_path, mailed=False)
    printed = capsys.readouterr().out
    assert "no figures through 2026-10-10" in printed
    assert "Budget alerts: none (no mail server: --no-mail)" in printed
