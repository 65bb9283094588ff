"""The demo config with other ``mapping_rules:`` (or none), for tests of the rules.

The shipped ``chargeback.yaml`` carries the demo's rules; a test comparing a month with and
without rules, or with hand-made ones, swaps that block by text, so every other line (and
its exact numbers) stays as shipped. The hand-made cases rewrite the emulator's
``GET /assistant`` answer so that one assistant shows each precedence step.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "include" / "config" / "chargeback.yaml"
MAPPING = CONFIG.with_name("assistant_teams.csv")


def with_rules(text: str, rules: str) -> str:
    """``text`` (a ``chargeback.yaml``) with its ``mapping_rules:`` block, if any, replaced
    by ``rules`` (a whole ``mapping_rules:`` block, or ``""`` for none)."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("mapping_rules:")]
    assert len(starts) <= 1, "two mapping_rules blocks; YAML keeps one"
    kept = lines
    if starts:
        start = end = starts[0]
        while end + 1 < len(lines) and lines[end + 1].startswith((" ", "-")):
            end += 1
        kept = lines[:start] + lines[end + 1 :]
    return "".join(kept) + ("\n" + rules.strip() + "\n" if rules.strip() else "")


def demo_config_with_rules(rules: str) -> str:
    """The shipped demo config with ``rules`` in place of its own."""
    return with_rules(CONFIG.read_text(encoding="utf-8"), rules)


RULES = """
mapping_rules:
  - metadata: costCenter
    team_key: team
  - name: "^ops-"
    cost_center: operations
    team: by-name
"""
"""The hand-made cases' rules: a metadata rule first, then a name rule."""


def single_row_ids() -> list[str]:
    """Assistants the demo mapping maps with one open row, in file order."""
    rows = list(csv.DictReader(io.StringIO(MAPPING.read_text(encoding="utf-8"))))
    ids = [row["assistant_id"] for row in rows]
    return [row["assistant_id"] for row in rows if ids.count(row["assistant_id"]) == 1]


def hand_made_cases(sidecar: Path) -> dict[str, str]:
    """Rewrite the emulator's ``GET /assistant`` answer (``sidecar``) so that one assistant
    shows each precedence step under :data:`RULES`; return each role's assistant id.

    - ``csv``: mapped by a CSV row, tagged ``costCenter: operations`` and named ``ops-…``:
      the row wins.
    - ``metadata``: tagged ``costCenter: support``, ``team: from-metadata`` and named
      ``ops-…``: the metadata rule wins over the name rule (its CSV row is to be dropped).
    - ``name``: named ``ops-new-assistant``, no tags: the name rule catches it (its CSV row
      is to be dropped, as for an assistant created since the CSV was last edited).
    - ``nothing``: the listed pilot, tagged with an unknown cost center and named ``pilot``:
      no rule matches, it stays ``UNALLOCATED``.
    """
    listed = json.loads(sidecar.read_text(encoding="utf-8"))
    mapped = {row.split(",")[0] for row in MAPPING.read_text(encoding="utf-8").splitlines()}
    unmapped = [item["id"] for item in listed if item["id"] not in mapped]
    single = [i for i in single_row_ids() if any(item["id"] == i for item in listed)]
    assert unmapped and len(single) >= 3, "the demo org changed; update the test"
    roles = {"csv": single[0], "metadata": single[1], "name": single[2], "nothing": unmapped[0]}
    cases = {
        "csv": ({"costCenter": "operations", "team": "from-metadata"}, "ops-csv-row-first"),
        "metadata": ({"costCenter": "support", "team": "from-metadata"}, "ops-but-metadata-first"),
        "name": ({}, "ops-new-assistant"),
        "nothing": ({"costCenter": "no-such-center"}, "pilot"),
    }
    by_id = {assistant: role for role, assistant in roles.items()}
    for item in listed:
        role = by_id.get(item["id"])
        if role is not None:
            item["metadata"], item["name"] = cases[role]
    sidecar.write_text(json.dumps(listed), encoding="utf-8")
    return roles


def mapping_without(roles: dict[str, str]) -> str:
    """The demo mapping without the rows of the assistants the rules are to catch."""
    dropped = (roles["metadata"], roles["name"])
    rows = MAPPING.read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(row for row in rows if not row.startswith(dropped))
