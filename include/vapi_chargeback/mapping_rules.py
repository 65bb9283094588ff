"""``mapping_rules:`` of ``chargeback.yaml``: cost centers from assistant metadata and names.

An org with thousands of assistants cannot keep a CSV row for each, and teams already tag
assistants (``metadata.costCenter``, names like ``sales-…``), the way Kubecost maps by
labels and AWS Cost Categories by tags. Rules are tried in their order after the mapping
CSV's row valid that day and before ``UNALLOCATED``; the first that matches allocates:

- ``metadata: KEY`` (optional ``team_key: KEY2``, ``team: T``): the assistant's
  ``metadata[KEY]`` is a cost-center id still charged that day; the team is
  ``metadata[KEY2]`` when that is text, else ``T`` (default ``unassigned``). A rule's team
  is never blank, like a CSV row's, so a suggested row can stand for it.
- ``name: REGEX`` with ``cost_center`` and ``team``: the regular expression is found in the
  assistant's name (``re.search``; anchor it with ``^``/``$`` to match whole names).

A rule acts like the CSV row it would suggest: a call whose variable names the cost center
the rule gives is charged with the rule's team, as with a CSV row. Metadata and names have
no history in the API, so rules see the assistants as the run listed them; the CSV stays the effective-dated source of truth (``mapping suggest`` turns
rules into dated rows).

A rule is *shadowed* when an earlier rule makes it unreachable: a ``metadata`` rule with
the same key as an earlier one (same value, same outcome), or a ``name`` rule with the same
expression as an earlier one. Both are reported, as are unknown cost centers, invalid
expressions and empty keys: :func:`rule_problems`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Loc = tuple[int | str, ...]
RuleKind = Literal["metadata", "name"]
DEFAULT_TEAM = "unassigned"
"""A metadata rule's team when neither its ``team_key`` value nor its ``team`` gives one."""


class MappingRule(BaseModel):
    """One rule; which kind it is follows from its fields (checked by :func:`rule_problems`)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    metadata: str | None = None
    """Metadata key whose value is a cost-center id."""
    team_key: str | None = None
    """With ``metadata``: metadata key whose value is the team (optional)."""
    name: str | None = None
    """Regular expression searched in the assistant's name."""
    cost_center: str | None = Field(default=None, min_length=1)
    """With ``name``: the cost center it charges."""
    team: str | None = Field(default=None, min_length=1)
    """With ``name``: the team it charges; with ``metadata``: the team when ``team_key``
    gives none (default ``unassigned``)."""

    @property
    def kind(self) -> RuleKind:
        return "metadata" if self.metadata is not None else "name"


@dataclass(frozen=True)
class RuleMatch:
    cost_center_id: str
    team: str
    kind: RuleKind


class ListedAssistant(BaseModel):
    """One assistant as the run listed it: what the rules read (id, name, metadata)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    """Canonical id."""
    name: str
    """Printable name, ``""`` when it has none."""
    metadata: dict[str, Any] = {}


@dataclass(frozen=True)
class RuleBook:
    """The config's rules and the run's assistants snapshot they apply to."""

    rules: list[MappingRule]
    assistants: Mapping[str, ListedAssistant]
    """Canonical id → the assistant as listed. One not listed (deleted since, or the listing
    failed) matches no rule: its name and metadata are unknown."""

    def match(
        self, assistant_id: str, cost_center_ends: Mapping[str, date | None], day: date
    ) -> RuleMatch | None:
        listed = self.assistants.get(assistant_id)
        if listed is None or not self.rules:
            return None
        return match_rules(self.rules, listed.name, listed.metadata, cost_center_ends, day)


def match_rules(
    rules: list[MappingRule],
    name: str,
    metadata: Mapping[str, Any],
    cost_center_ends: Mapping[str, date | None],
    day: date,
) -> RuleMatch | None:
    """The first rule that allocates an assistant named ``name`` with ``metadata`` on ``day``.

    ``cost_center_ends``: every cost center of the month → its last charged day; a rule
    naming one after that day does not match (the next rule is tried).
    """
    for rule in rules:
        if rule.metadata is not None:
            center = metadata.get(rule.metadata)
            team = metadata.get(rule.team_key) if rule.team_key is not None else None
            if isinstance(center, str) and _charged(center, cost_center_ends, day):
                return RuleMatch(center, _team_text(team) or rule.team or DEFAULT_TEAM, "metadata")
        elif (
            rule.name is not None
            and rule.cost_center is not None
            and rule.team is not None
            and re.search(rule.name, name)
            and _charged(rule.cost_center, cost_center_ends, day)
        ):
            return RuleMatch(rule.cost_center, rule.team, "name")
    return None


def _charged(center: str, cost_center_ends: Mapping[str, date | None], day: date) -> bool:
    if center not in cost_center_ends:
        return False
    end = cost_center_ends[center]
    return end is None or day <= end


def _team_text(value: object) -> str:
    """A metadata team as one printable line, ``""`` when it is not text."""
    if not isinstance(value, str):
        return ""
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())


def rule_problems(rules: object, known: list[str]) -> list[tuple[Loc, str]]:
    """Problems of the raw ``mapping_rules`` list, each with the path of the field to change.

    ``known``: the configured cost-center ids. Tolerates wrong types (the model reports them).
    """
    if not isinstance(rules, list):
        return []
    problems: list[tuple[Loc, str]] = []
    keys: dict[str, int] = {}
    patterns: dict[str, int] = {}
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        loc: Loc = ("mapping_rules", index)
        key, pattern = rule.get("metadata"), rule.get("name")
        if (key is None) == (pattern is None):
            problems.append((loc, "give exactly one of metadata: (a key) or name: (a regex)"))
            continue
        if key is not None:
            problems += _metadata_problems(rule, loc, keys, index)
        else:
            problems += _name_problems(rule, loc, patterns, index, known)
    return problems


def _metadata_problems(
    rule: dict[str, Any], loc: Loc, first: dict[str, int], index: int
) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    if "cost_center" in rule:
        problems.append(
            ((*loc, "cost_center"), "a metadata rule takes its cost center from the metadata"
             " value; remove it")
        )  # fmt: skip
    for field in ("metadata", "team_key"):
        value = rule.get(field)
        if field in rule and (not isinstance(value, str) or not value.strip()):
            problems.append(((*loc, field), "the metadata key is empty; name a key"))
    key = rule.get("metadata")
    if isinstance(key, str) and key.strip():
        if key in first:
            problems.append(
                ((*loc, "metadata"), f"shadowed: mapping_rules[{first[key]}] reads the same key"
                 f" {key!r} first, so this rule can never match; remove one")
            )  # fmt: skip
        else:
            first[key] = index
    return problems


def _name_problems(
    rule: dict[str, Any], loc: Loc, first: dict[str, int], index: int, known: list[str]
) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    if "team_key" in rule:
        problems.append(((*loc, "team_key"), "only metadata rules take team_key; use team:"))
    for field in ("cost_center", "team"):
        if rule.get(field) is None:
            problems.append(((*loc, field), f"a name rule needs {field}:; add it"))
    center = rule.get("cost_center")
    if isinstance(center, str) and center not in known:
        problems.append(
            ((*loc, "cost_center"), f"{center!r} is not a cost center id; use one of {known}")
        )
    pattern = rule.get("name")
    if not isinstance(pattern, str):
        return problems
    try:
        re.compile(pattern)
    except re.error as error:
        problems.append(
            ((*loc, "name"), f"{pattern!r} is not a valid regular expression ({error})")
        )
        return problems
    if pattern in first:
        problems.append(
            ((*loc, "name"), f"shadowed: mapping_rules[{first[pattern]}] has the same expression"
             f" {pattern!r} first, so this rule can never match; remove one")
        )  # fmt: skip
    else:
        first[pattern] = index
    return problems
