"""Bad ``mapping_rules`` stop every entry point with file, line and field, and nothing is
written: the monthly run's plan, the daily run's plan, ``mapping suggest`` and
``validate``.

Each case is the shipped demo config with its rules replaced by a bad block; the line the
error names is the line of the field at fault in that file (found here by its text).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from vapi_chargeback import cli, pipeline
from vapi_chargeback.budgets.run import MtdSettings, plan_mtd
from vapi_chargeback.config import ConfigError

from support.rules_config import CONFIG, demo_config_with_rules


@dataclass(frozen=True)
class Bad:
    rules: str
    at: str
    """The text of the line the error must name (its first occurrence in the rules block)."""
    message: str
    """Regular expression for ``field: what``."""


CASES = {
    "unknown-cost-center": Bad(
        'mapping_rules:\n  - name: "^Pilot"\n    cost_center: finance\n    team: pilots\n',
        "    cost_center: finance",
        r"mapping_rules\[0\]\.cost_center: 'finance' is not a cost center id; use one of",
    ),
    "invalid-regex": Bad(
        'mapping_rules:\n  - name: "^Pilot ("\n    cost_center: operations\n    team: pilots\n',
        '  - name: "^Pilot ("',
        r"mapping_rules\[0\]\.name: '\^Pilot \(' is not a valid regular expression",
    ),
    "empty-metadata-key": Bad(
        'mapping_rules:\n  - metadata: costCenter\n  - metadata: ""\n',
        '  - metadata: ""',
        r"mapping_rules\[1\]\.metadata: the metadata key is empty; name a key",
    ),
    "shadowed": Bad(
        "mapping_rules:\n  - metadata: costCenter\n    team: pilots\n"
        "  - metadata: costCenter\n    team_key: team\n",
        "  - metadata: costCenter\n    team_key: team",
        r"mapping_rules\[1\]\.metadata: shadowed: mapping_rules\[0\] reads the same key"
        r" 'costCenter' first, so this rule can never match; remove one",
    ),
}


def bad_config(folder: Path, bad: Bad) -> tuple[Path, str]:
    """The config folder's chargeback.yaml and the ``path:line: message`` the error must hold."""
    folder.mkdir()
    for name in ("assistant_teams.csv", "fx_rates.csv"):
        shutil.copy(CONFIG.with_name(name), folder)
    text = demo_config_with_rules(bad.rules)
    path = folder / CONFIG.name
    path.write_text(text, encoding="utf-8")
    start = text.index("mapping_rules:")
    line = text[: text.index(bad.at, start)].count("\n") + 1
    return path, rf"{re.escape(str(path))}:{line}: {bad.message}"


def nothing_in(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize("name", list(CASES))
def test_the_monthly_and_the_daily_run_stop_before_writing(name: str, tmp_path: Path) -> None:
    config, expected = bad_config(tmp_path / "config", CASES[name])
    output = tmp_path / "output"

    with pytest.raises(ConfigError) as monthly:
        pipeline.plan_run(
            pipeline.RunSettings(
                config_path=str(config),
                output_url=output.as_uri(),
                default_output_url=output.as_uri(),
                month="2026-10",
                run_id="bad-rules",
            )
        )
    with pytest.raises(ConfigError) as daily:
        plan_mtd(
            MtdSettings(
                config_path=str(config),
                output_url=output.as_uri(),
                default_output_url=output.as_uri(),
                run_day=date(2026, 10, 20),
                run_id="bad-rules",
            )
        )

    assert re.search(expected, str(monthly.value)), str(monthly.value)
    assert re.search(expected, str(daily.value)), str(daily.value)
    assert nothing_in(output) == []


@pytest.mark.parametrize("name", list(CASES))
def test_mapping_suggest_and_validate_say_where_and_write_nothing(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, expected = bad_config(tmp_path / "config", CASES[name])
    listing = tmp_path / "assistants.json"
    out = tmp_path / "suggested.csv"

    suggested = cli.main(
        ["mapping", "suggest", "--config", str(config), "--from-listing", str(listing),
         "--out", str(out)]
    )  # fmt: skip
    suggest_err = capsys.readouterr().err
    validated = cli.main(["validate", str(config)])
    validate_out = capsys.readouterr().out

    assert suggested != 0 and re.search(expected, suggest_err), suggest_err
    assert not out.exists() and not listing.exists()
    assert validated == 1 and re.search(expected, validate_out), validate_out
