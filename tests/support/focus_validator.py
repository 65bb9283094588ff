"""The FinOps Foundation's ``focus-validator`` 2.2.1, run on a FOCUS file from the tests.

It needs Python >= 3.12 while the project stays on 3.11, so it lives in its own venv,
``.venv-focus/`` (``make focus-validator``). Facts it forces on the runner:

- it always exits 0: the verdict is its summary line ``Total: … | Pass: … | Fail: N |
  Skipped: …`` and one ``❌ <rule id>: FAIL`` line per failing rule;
- it reads ``focus_validator/rules/currency_codes.csv`` relative to the working directory,
  so it runs from the venv's site-packages (where it also drops its detailed log);
- offline only ``--validate-version 1.2`` works (``--block-download``);
- its bundled 1.2 rules contradict themselves on InvoiceId (``C-004-C`` "MUST be null",
  ``C-005-C`` "MUST NOT be null"), so exactly one of those two always fails.

Without the venv a test skips loudly, and fails under ``CI=true``.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
VENV = PROJECT / ".venv-focus"
VALIDATOR = VENV / "bin" / "focus-validator"
STAMP = VENV / ".installed"
ARGS = (
    "--validate-version",
    "1.2",
    "--block-download",
    "--applicability-criteria",
    "TAGGING_SUPPORTED",
)
CONTRADICTORY = frozenset({"InvoiceId-C-004-C", "InvoiceId-C-005-C"})
"""One of these fails on any file: the bundled 1.2 rules require both null and not null."""
TIMEOUT_SECONDS = 120
SUMMARY = re.compile(r"Total: (\d+) \| Pass: (\d+) \| Fail: (\d+) \| Skipped: (\d+)")
FAILED_RULE = re.compile(r"^\S+\s+(\S+): FAIL\b", re.MULTILINE)


@dataclass(frozen=True)
class Verdict:
    total: int
    passed: int
    failed: int
    skipped: int
    failed_rules: frozenset[str]
    seconds: float
    output: str

    @property
    def unexpected(self) -> frozenset[str]:
        """Failing rules beyond the one contradictory InvoiceId rule the file cannot avoid."""
        if self.failed == 1 and len(self.failed_rules & CONTRADICTORY) == 1:
            return frozenset()
        return self.failed_rules or frozenset({f"{self.failed} failures without rule ids"})


def require_validator() -> Path:
    """The validator's path; skip loudly without it, or fail under ``CI=true``."""
    if STAMP.exists() and VALIDATOR.exists():
        return VALIDATOR
    reason = (
        "!!! focus-validator is not installed (.venv-focus): run `make focus-validator`, which"
        " needs a Python >= 3.12 (PATH or pyenv; FOCUS_PYTHON=/path/to/python3.12). The FOCUS"
        " files were NOT checked by the FinOps Foundation's validator."
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def validate(path: Path) -> Verdict:
    """Run the validator on the FOCUS CSV at ``path`` and read its verdict."""
    validator = require_validator()
    site_packages = next((VENV / "lib").glob("python3.*/site-packages"))
    started = time.monotonic()
    completed = subprocess.run(
        [str(validator), "--data-file", str(path.resolve()), *ARGS],
        cwd=site_packages,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        raise AssertionError(
            f"focus-validator on {path} exited {completed.returncode}:\n{output[-4000:]}"
        )
    return read_verdict(output, time.monotonic() - started)


def read_verdict(output: str, seconds: float) -> Verdict:
    """The verdict in the validator's console output; an output without one is an error."""
    summary = SUMMARY.search(output)
    if summary is None:
        raise AssertionError(f"focus-validator printed no summary line:\n{output[-4000:]}")
    total, passed, failed, skipped = map(int, summary.groups())
    rules = frozenset(FAILED_RULE.findall(output))
    return Verdict(total, passed, failed, skipped, rules, seconds, output)


def assert_valid(path: Path) -> Verdict:
    """The file passes every applicable rule but the contradictory InvoiceId one."""
    verdict = validate(path)
    assert not verdict.unexpected, (
        f"focus-validator: {path.name} fails {sorted(verdict.unexpected)}"
        f" (Fail: {verdict.failed}); its report:\n{verdict.output[-6000:]}"
    )
    assert verdict.passed > 0, f"focus-validator passed no rule on {path.name}"
    return verdict
