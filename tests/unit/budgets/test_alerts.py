"""Budget alerts: first crossing only, once per (cost center, month, threshold), under reruns,
retries, failures and a second sender interleaved mid-send."""

from __future__ import annotations

import json
import smtplib
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vapi_chargeback.budgets.alert_log import alert_key, read_alert_log
from vapi_chargeback.budgets.alerts import (
    AlertError,
    AlertRefusedError,
    due_alerts,
    send_alerts,
)
from vapi_chargeback.budgets.settings import Budget
from vapi_chargeback.delivery.send import TransientSendError

from support.mtd_samples import FINANCE, RecordingSender, center, config, on_day, report


def run(root: Path, mtd, sender: RecordingSender, **kwargs):  # type: ignore[no-untyped-def]
    waits: list[float] = []
    result = send_alerts(
        root,
        mtd,
        kwargs.pop("cfg", None) or config(),
        sender,
        from_address="chargeback@example.com",
        run_id=kwargs.pop("run_id", f"run-{mtd.through_day}"),
        sleep=waits.append,
        **kwargs,
    )
    return result


def test_only_the_first_crossing_of_each_threshold_mails(tmp_path: Path) -> None:
    sender = RecordingSender()
    spend = {5: "400.00", 6: "550.00", 7: "600.00", 8: "850.00", 9: "990.00", 10: "1000.00"}
    sent_by_day = {}
    for day, spent in spend.items():
        mtd = on_day(report(center("support", spent)), day)
        sent_by_day[day] = run(tmp_path, mtd, sender).sent
    assert sent_by_day == {
        5: [],
        6: ["support:threshold:50"],
        7: [],
        8: ["support:threshold:80"],
        9: [],
        10: ["support:threshold:100"],  # reaching the budget exactly counts as crossing it
    }
    assert len(sender.accepted) == 3
    ledger = read_alert_log(tmp_path, "2026-10")
    assert ledger is not None
    assert {k: (r.status, str(r.due_on)) for k, r in ledger.alerts.items()} == {
        "support:threshold:50": ("sent", "2026-10-06"),
        "support:threshold:80": ("sent", "2026-10-08"),
        "support:threshold:100": ("sent", "2026-10-10"),
    }


def test_several_thresholds_on_one_day_are_one_mail_and_never_again(tmp_path: Path) -> None:
    sender = RecordingSender()
    mtd = report(center("support", "1050.00"), center("sales", "100.00"), center("ops", "9999.00"))
    first = run(tmp_path, mtd, sender)
    assert first.sent == [
        "support:threshold:50",
        "support:threshold:80",
        "support:threshold:100",
        "support:forecast:100",  # spend above the budget: so is the forecast
    ]
    assert first.mails == 1
    (recipients, message) = sender.accepted[0]
    assert recipients == ["support-lead@example.com", FINANCE]
    assert "crossed 50 %, 80 % and 100 %" in message.get_body(("plain",)).get_content()
    ledger = read_alert_log(tmp_path, "2026-10")
    assert ledger is not None
    assert len({r.message_id for r in ledger.alerts.values()}) == 1

    rerun = run(tmp_path, mtd, sender)
    later = run(tmp_path, on_day(report(center("support", "1200.00")), 11), sender)
    assert rerun.sent == [] and later.sent == []
    assert rerun.skipped == first.sent
    assert len(sender.accepted) == 1


def test_forecast_alert_once_and_not_on_a_complete_month(tmp_path: Path) -> None:
    heading = center("support", "300.00", forecast="1200.00")
    assert [a.key for a in due_alerts(report(heading))] == ["support:forecast:100"]
    sender = RecordingSender()
    assert run(tmp_path, report(heading), sender).sent == ["support:forecast:100"]
    assert "is forecast to spend 120.0 %" in sender.subjects()[0]
    assert run(tmp_path, on_day(report(heading), 12), sender).sent == []
    # On the 1st the run covers the whole previous month: its "forecast" is its spend.
    assert due_alerts(report(heading, day=31, total_days=31)) == []
    exactly = center("support", "300.00", forecast="1000.00")
    assert due_alerts(report(exactly)) == []  # the forecast alert needs strictly above


def test_no_budget_no_alert_and_threshold_spellings_are_one_key() -> None:
    assert due_alerts(report(center("ops", "99999.00"))) == []
    assert alert_key("support", "threshold", Decimal("80.00")) == "support:threshold:80"
    assert alert_key("support", "threshold", Decimal("62.50")) == "support:threshold:62.5"
    budget = Budget(amount_usd=Decimal("1000.00"), thresholds_pct=(Decimal("80.0"),))
    due = due_alerts(report(center("support", "800.00", budget=budget)))
    assert [item.key for item in due] == ["support:threshold:80"]


def test_a_second_sender_interleaved_mid_send_sends_nothing(tmp_path: Path) -> None:
    """Sender B starts while A's mail is in the server's hands: B cannot take the month's
    lock and sends nothing; once A has recorded its mail, B finds it sent. One mail in all."""
    mtd = report(center("support", "850.00"))
    other = RecordingSender()
    outcomes: list[object] = []

    def second_sender() -> None:
        try:
            outcomes.append(run(tmp_path, mtd, other, run_id="run-b", lock_timeout=0))
        except TimeoutError as error:
            outcomes.append(error)
        ledger = read_alert_log(tmp_path, "2026-10")
        assert ledger is not None
        outcomes.append({k: r.status for k, r in ledger.alerts.items()})

    first = RecordingSender(during=second_sender)
    assert run(tmp_path, mtd, first, run_id="run-a").sent == [
        "support:threshold:50",
        "support:threshold:80",
    ]
    assert isinstance(outcomes[0], TimeoutError)
    assert "another alerts step of 2026-10" in str(outcomes[0])
    assert outcomes[1] == {"support:threshold:50": "sending", "support:threshold:80": "sending"}
    assert run(tmp_path, mtd, other, run_id="run-b").sent == []
    assert len(first.accepted) + len(other.accepted) == 1


def test_a_killed_hand_over_is_sent_again_with_its_message_id(tmp_path: Path) -> None:
    class Killed(BaseException):
        """What a SIGKILL looks like from inside: nothing after it runs."""

    mtd = report(center("support", "850.00"))
    with pytest.raises(Killed):
        run(tmp_path, mtd, RecordingSender(refuse=[Killed()]))
    ledger = read_alert_log(tmp_path, "2026-10")
    assert ledger is not None
    left = {r.status for r in ledger.alerts.values()}
    message_id = ledger.alerts["support:threshold:80"].message_id
    assert left == {"sending"}

    sender = RecordingSender()
    assert run(tmp_path, mtd, sender, run_id="retry").sent == [
        "support:threshold:50",
        "support:threshold:80",
    ]
    assert str(sender.accepted[0][1]["Message-ID"]) == message_id
    after = read_alert_log(tmp_path, "2026-10")
    assert after is not None and after.alerts["support:threshold:80"].attempts == 2


def test_temporary_failures_retry_in_rounds_permanent_ones_fail_for_good(tmp_path: Path) -> None:
    mtd = report(center("support", "550.00"), center("sales", "2600.00"))
    busy = RecordingSender(refuse=[TransientSendError("451 try later")])
    done = run(tmp_path, mtd, busy)
    assert sorted(done.sent) == ["sales:threshold:50", "support:threshold:50"]
    assert done.mails == 2

    refused = smtplib.SMTPRecipientsRefused({"x@example.com": (550, b"no such user")})
    root = tmp_path / "refused"
    with pytest.raises(AlertRefusedError) as caught:
        run(root, report(center("support", "550.00")), RecordingSender(refuse=[refused]))
    assert caught.value.report.refused == ["support:threshold:50"]
    assert "550 no such user" in str(caught.value)
    ledger = read_alert_log(root, "2026-10")
    assert ledger is not None and ledger.alerts["support:threshold:50"].permanent

    flaky = [TransientSendError("421 busy")] * 3
    with pytest.raises(AlertError) as still:
        run(tmp_path / "flaky", report(center("support", "550.00")), RecordingSender(refuse=flaky))
    assert not isinstance(still.value, AlertRefusedError)
    # Fixed later: the failed alert goes out on the next day's run, once.
    sender = RecordingSender()
    assert run(root, on_day(report(center("support", "560.00")), 11), sender).sent == [
        "support:threshold:50"
    ]
    assert read_alert_log(root, "2026-10").alerts["support:threshold:50"].status == "sent"  # type: ignore[union-attr]


def test_ledger_is_json_beside_delivery_ledgers(tmp_path: Path) -> None:
    run(tmp_path, report(center("support", "850.00")), RecordingSender())
    data = json.loads((tmp_path / "_alerts" / "2026-10.json").read_text())
    record = data["alerts"]["support:threshold:80"]
    assert record["recipient"] == "support-lead@example.com"
    assert record["cc"] == [FINANCE]
    assert (record["spent_usd"], record["budget_usd"]) == ("850.00", "1000.00")
    assert record["run_id"] == "run-2026-10-10"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    daily=st.lists(st.integers(min_value=0, max_value=40_000), min_size=1, max_size=12),
    rerun=st.sets(st.integers(min_value=0, max_value=11)),
)
def test_each_threshold_goes_once_on_the_first_day_spend_reaches_it(
    daily: list[int], rerun: set[int]
) -> None:
    """Any month of spend (cents a day, never refunded) with any days rerun: each threshold
    is mailed exactly once, on the first day spend reaches it, and never before."""
    sender = RecordingSender()
    sent_on: dict[str, int] = {}
    spent = Decimal(0)
    with tempfile.TemporaryDirectory() as folder:
        for day, cents in enumerate(daily, start=1):
            spent += Decimal(cents) / 100
            mtd = on_day(report(center("support", str(spent), budget="default")), day)
            for _ in range(2 if day - 1 in rerun else 1):
                for key in run(Path(folder), mtd, sender).sent:
                    assert key not in sent_on, f"{key} sent twice"
                    sent_on[key] = day
    cumulative = [sum(daily[:n]) for n in range(1, len(daily) + 1)]
    for pct in (50, 80, 100):
        first = next(
            (day for day, total in enumerate(cumulative, 1) if total * 100 >= pct * 100_000),
            None,
        )
        assert sent_on.get(f"support:threshold:{pct}") == first
    assert len(sender.accepted) == len(set(sent_on.values()))  # one mail per day with news
