"""The runner of focus-validator reads its verdict right: it always exits 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import focus_validator
from support.focus_validator import read_verdict

ONE_CONTRADICTION = """
=== Validation Results ===
Total: 578 | Pass: 139 | Fail: 1 | Skipped: 438
✅ Tags-C-001-M: PASS  (violations=0, 2.8ms)
❌ InvoiceId-C-004-C: FAIL  (violations=10, msg=InvoiceId MUST be NULL., 2.0ms)

--- Failures ---
- InvoiceId-C-004-C: violations=10; InvoiceId MUST be NULL.
"""
MIXED_INVOICE_IDS = """
Total: 578 | Pass: 136 | Fail: 4 | Skipped: 438
❌ InvoiceId-C-000-O: FAIL  (violations=0, msg=AND failed)
❌ InvoiceId-C-003-C: FAIL  (violations=0, msg=OR failed)
❌ InvoiceId-C-004-C: FAIL  (violations=6, msg=InvoiceId MUST be NULL., 3.8ms)
❌ InvoiceId-C-005-C: FAIL  (violations=4, msg=InvoiceId MUST NOT be NULL., 6.0ms)
"""
ANOTHER_RULE = """
Total: 578 | Pass: 139 | Fail: 1 | Skipped: 438
❌ ChargeDescription-C-002-M: FAIL  (violations=1, msg=not ASCII)
"""


def test_the_one_contradictory_invoice_rule_is_accepted() -> None:
    verdict = read_verdict(ONE_CONTRADICTION, 1.0)

    assert (verdict.total, verdict.passed, verdict.failed, verdict.skipped) == (578, 139, 1, 438)
    assert verdict.failed_rules == {"InvoiceId-C-004-C"}
    assert verdict.unexpected == frozenset()


@pytest.mark.parametrize(
    ("output", "unexpected"),
    [
        pytest.param(
            MIXED_INVOICE_IDS,
            {"InvoiceId-C-000-O", "InvoiceId-C-003-C", "InvoiceId-C-004-C", "InvoiceId-C-005-C"},
            id="both-invoice-rules",
        ),
        pytest.param(ANOTHER_RULE, {"ChargeDescription-C-002-M"}, id="another-rule"),
        pytest.param(
            "Total: 5 | Pass: 3 | Fail: 2 | Skipped: 0\n",
            {"2 failures without rule ids"},
            id="failures-without-ids",
        ),
    ],
)
def test_any_other_failure_is_reported(output: str, unexpected: set[str]) -> None:
    assert read_verdict(output, 1.0).unexpected == unexpected


def test_an_output_without_a_summary_is_an_error() -> None:
    with pytest.raises(AssertionError, match="no summary line"):
        read_verdict("Traceback (most recent call last):\n", 1.0)


def test_without_the_validator_ci_fails_and_a_laptop_skips(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(focus_validator, "STAMP", tmp_path / "missing")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="make focus-validator"):
        focus_validator.require_validator()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="NOT checked"):
        focus_validator.require_validator()
