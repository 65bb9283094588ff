"""What the mails say: a month's figures read back from its published files, and the messages.

Every figure comes from the published set itself — the manifest's totals and the CSV's
lines — never from the pipeline's memory, so a mail cannot disagree with the attachment
it carries, and delivery can run long after the run that published.

Owners get their workbook and a short summary (total, change against the previous
month when that month is published too, the most expensive assistants, shared costs);
finance gets the full workbook and the CSV with the per-cost-center table and the
reconciliation. Each message has an HTML part and a plain-text part with the same
content, ``Auto-Submitted: auto-generated`` so out-of-office replies stay quiet, and a
Message-ID chosen by the caller so a retried message keeps its identity.

Each subject cites the statement it carries — the org's statement id for finance, the
cost center's for its owner — so a reply or a booking can name it. A draft (mailed only
with ``deliver_drafts: true``) says DRAFT in the subject, the heading and the first
sentence: nobody should book a month finance has not approved.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from vapi_chargeback.delivery.figures import drivers_table, key_facts, published_previous
from vapi_chargeback.money import percent_of
from vapi_chargeback.statement import FINAL, UNALLOCATED
from vapi_chargeback.statements.formatting import looks_like_formula

ZERO = Decimal(0)
XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")
CSV_TYPE = ("text", "csv")
SHARED_PREFIX = "shared:"
DRAFT_MARK = "DRAFT"
DRAFT_NOTE = (
    "This is a DRAFT for review: finance has not approved it and its figures may still"
    " change. Do not book it; the final statement follows once the month is approved."
)


@dataclass(frozen=True)
class Attachment:
    """A file of the month as it goes into a mail."""

    path: str
    """Relative to the month folder, as the manifest lists it."""
    data: bytes
    sha256: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class AssistantCost:
    assistant_id: str
    team: str
    calls: int
    minutes: Decimal
    cost_usd: Decimal
    name: str = ""
    """The CSV's ``assistant_name``: the id itself where no name is known."""


@dataclass(frozen=True)
class CenterSummary:
    id: str
    name: str
    cost_usd: Decimal
    previous_usd: Decimal | None
    """The same cost center's total in the previous month, when that month is published."""
    calls: int = 0
    minutes: Decimal = ZERO
    shared_usd: dict[str, Decimal] = field(default_factory=dict)
    """Shared pool name → this cost center's share."""
    assistants: list[AssistantCost] = field(default_factory=list)
    """Every assistant charged directly, most expensive first."""


@dataclass(frozen=True)
class MonthSummary:
    period: str
    timezone: str
    currency: str
    total_usd: Decimal
    allocated_usd: Decimal
    unallocated_usd: Decimal
    reconciliation_ok: bool | None
    previous_period: str
    previous_total_usd: Decimal | None
    centers: dict[str, CenterSummary]
    final: bool = True
    """False for a draft: every message then says DRAFT."""
    version: int = 1
    org_statement_id: str | None = None
    """The org statement's id; ``None`` for a month published before statements had ids."""
    statement_ids: dict[str, str] = field(default_factory=dict)
    """Cost-center id → its statement id."""
    approved_by: str | None = None
    approved_at: str | None = None
    """As the manifest records it (ISO 8601)."""
    key_figures: Mapping[str, Any] = field(default_factory=dict)
    """The manifest's ``key_figures`` block (empty for a manifest written before it)."""
    variance: Mapping[str, Any] | None = None
    """The manifest's ``variance`` block: the drivers against the previous month."""

    @property
    def allocated_pct(self) -> Decimal | None:
        return percent_of(self.allocated_usd, self.total_usd)

    def status_text(self) -> str:
        """``final (approved by … on …)`` or the draft warning, for the facts table."""
        if not self.final:
            return f"{DRAFT_MARK} v{self.version}, not approved"
        when = f" on {self.approved_at[:10]}" if self.approved_at else ""
        who = f" by {self.approved_by}" if self.approved_by else ""
        return f"final v{self.version} (approved{who}{when})"


def summarize(
    manifest: Mapping[str, Any],
    csv_data: bytes,
    previous_manifest: Mapping[str, Any] | None,
    names: Mapping[str, str],
) -> MonthSummary:
    """The month's figures from its manifest and CSV; ``names`` maps cost-center ids to names."""
    period = str(manifest["period"])
    totals = manifest["totals"]
    by_center = {key: Decimal(value) for key, value in totals["cost_by_cost_center_usd"].items()}
    previous = (previous_manifest or {}).get("totals", {}).get("cost_by_cost_center_usd", {})
    lines = _csv_lines(csv_data)
    figures = manifest.get("key_figures") or {}
    centers: dict[str, CenterSummary] = {}
    for center_id, cost in by_center.items():
        if center_id == UNALLOCATED:
            continue
        own = [line for line in lines if line["cost_center_id"] == center_id]
        centers[center_id] = CenterSummary(
            id=center_id,
            name=names.get(center_id) or _first(own, "cost_center_name") or center_id,
            cost_usd=cost,
            previous_usd=published_previous(
                figures.get("cost_centers", {}).get(center_id), previous.get(center_id)
            ),
            calls=sum(int(line["calls"]) for line in own),
            minutes=sum((Decimal(line["minutes"]) for line in own), ZERO),
            shared_usd=_shared(own),
            assistants=_assistants(own),
        )
    reconciliation = manifest.get("reconciliation") or {}
    previous_total = (previous_manifest or {}).get("totals", {}).get("cost_usd")
    ids = manifest.get("statement_ids") or {}
    return MonthSummary(
        period=period,
        timezone=str(manifest.get("timezone", "")),
        currency=str(manifest.get("currency", "USD")),
        total_usd=Decimal(totals["cost_usd"]),
        allocated_usd=Decimal(totals["allocated_usd"]),
        unallocated_usd=Decimal(totals["unallocated_usd"]),
        reconciliation_ok=reconciliation.get("ok"),
        previous_period=previous_month(period),
        previous_total_usd=published_previous(figures.get("org"), previous_total),
        centers=centers,
        # A manifest from before the close lifecycle has no status: a draft, never approved.
        final=manifest.get("status") == FINAL,
        version=int(manifest.get("version") or 1),
        org_statement_id=ids.get("org"),
        statement_ids=dict(ids.get("cost_centers") or {}),
        approved_by=manifest.get("approved_by"),
        approved_at=manifest.get("approved_at"),
        key_figures=figures,
        variance=manifest.get("variance"),
    )


def previous_month(period: str) -> str:
    year, month = (int(part) for part in period.split("-"))
    first = date(year - 1, 12, 1) if month == 1 else date(year, month - 1, 1)
    return first.strftime("%Y-%m")


@dataclass(frozen=True)
class Envelope:
    """Header values every message shares."""

    from_address: str
    reply_to: str | None
    subject_prefix: str
    date: datetime
    run_id: str


def owner_message(
    summary: MonthSummary,
    center_id: str,
    *,
    recipient: str,
    workbook: Attachment,
    top: int,
    envelope: Envelope,
    message_id: str,
) -> EmailMessage:
    """The owner's mail: their workbook and what changed, readable without opening it."""
    center = summary.centers[center_id]
    currency = summary.currency
    statement_id = summary.statement_ids.get(center_id)
    subject = _subject(
        envelope,
        summary,
        f"{center.name}: {summary.period} statement{_cited(statement_id)},"
        f" {money(center.cost_usd)} {currency}",
    )
    figures = summary.key_figures.get("cost_centers", {}).get(center_id)
    facts = [
        *_identity(summary, statement_id),
        ("Total", f"{money(center.cost_usd)} {currency}"),
        ("Change", change_text(center.cost_usd, center.previous_usd, summary.previous_period)),
        ("Calls", f"{center.calls:,}"),
        ("Minutes", f"{center.minutes:,.2f}"),
        *key_facts(figures, currency),
    ]
    for pool, amount in sorted(center.shared_usd.items()):
        facts.append((f"Shared cost {pool}", f"{money(amount)} {currency}"))
    shown = center.assistants[:top]
    table = [
        [
            _assistant_label(a),
            a.assistant_id,
            a.team,
            f"{a.calls:,}",
            f"{a.minutes:,.2f}",
            money(a.cost_usd),
        ]
        for a in shown
    ]
    intro = _draft_first(
        summary,
        f"Attached is the Vapi voice-assistant chargeback statement of {center.name}"
        f" for {month_name(summary.period)} ({summary.timezone}).",
    )
    sections: list[Section] = [Section(None, facts=facts), *_drivers(summary, center_id)]
    if shown:
        sections.append(
            Section(
                f"Top {len(shown)} of {len(center.assistants)} assistants by cost",
                header=["Assistant", "Id", "Team", "Calls", "Minutes", f"Cost {currency}"],
                rows=table,
            )
        )
    footer = (
        "Every figure reconciles to the org's total for the month to the cent."
        " Reply to this mail with questions."
    )
    return compose_message(
        subject=subject,
        recipient=recipient,
        envelope=envelope,
        message_id=message_id,
        heading=_heading(summary, f"{center.name} — {month_name(summary.period)}"),
        intro=intro,
        sections=sections,
        footer=footer,
        attachments=[workbook],
        period=summary.period,
    )


def finance_message(
    summary: MonthSummary,
    *,
    recipient: str,
    attachments: Sequence[Attachment],
    envelope: Envelope,
    message_id: str,
) -> EmailMessage:
    """Finance's mail: the full workbook and CSV, every cost center and the reconciliation."""
    currency = summary.currency
    verdict = {True: "reconciled", False: "NOT reconciled", None: "no reconciliation"}[
        summary.reconciliation_ok
    ]
    subject = _subject(
        envelope,
        summary,
        f"{summary.period} statements{_cited(summary.org_statement_id)}:"
        f" {money(summary.total_usd)} {currency}, {verdict}",
    )
    rows = [
        [
            center.name,
            center.id,
            money(center.cost_usd),
            change_text(center.cost_usd, center.previous_usd, summary.previous_period),
        ]
        for center in sorted(summary.centers.values(), key=lambda c: (-c.cost_usd, c.id))
    ]
    rows.append(["Unallocated", UNALLOCATED, money(summary.unallocated_usd), ""])
    rows.append(
        [
            "Total",
            "",
            money(summary.total_usd),
            change_text(summary.total_usd, summary.previous_total_usd, summary.previous_period),
        ]
    )
    allocated = summary.allocated_pct
    figures = summary.key_figures.get("org")
    published = key_facts(figures, currency)
    facts = [
        *_identity(summary, summary.org_statement_id),
        ("Total", f"{money(summary.total_usd)} {currency}"),
        *(published or [("Allocated", "—" if allocated is None else f"{allocated:.1f} %")]),
        ("Reconciliation", verdict),
        ("Attached", ", ".join(item.name for item in attachments)),
    ]
    return compose_message(
        subject=subject,
        recipient=recipient,
        envelope=envelope,
        message_id=message_id,
        heading=_heading(summary, f"Vapi chargeback — {month_name(summary.period)}"),
        intro=_draft_first(
            summary,
            f"The chargeback statements for {month_name(summary.period)} ({summary.timezone})"
            " are published: the full workbook and the CSV are attached. Each cost-center"
            " owner receives their own workbook in a separate mail.",
        ),
        sections=[
            Section(None, facts=facts),
            Section(
                "By cost center",
                header=["Cost center", "Id", f"Cost {currency}", "Change"],
                rows=rows,
            ),
            *_drivers(summary, None),
        ],
        footer=f"Published by run {envelope.run_id}.",
        attachments=list(attachments),
        period=summary.period,
    )


def _drivers(summary: MonthSummary, center_id: str | None) -> list[Section]:
    """The Variance sheet's figures for the mail, from the manifest's ``variance`` block."""
    table = drivers_table(summary.variance, center_id)
    if table is None:
        return []
    title, header, rows = table
    return [Section(title, header=header, rows=rows)]


def money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def _subject(envelope: Envelope, summary: MonthSummary, text: str) -> str:
    mark = "" if summary.final else f"{DRAFT_MARK} "
    return f"{envelope.subject_prefix} {mark}{text}".strip()


def _cited(statement_id: str | None) -> str:
    return f" {statement_id}" if statement_id else ""


def _heading(summary: MonthSummary, text: str) -> str:
    return text if summary.final else f"{DRAFT_MARK} — {text}"


def _draft_first(summary: MonthSummary, intro: str) -> str:
    return intro if summary.final else f"{DRAFT_NOTE} {intro}"


def _identity(summary: MonthSummary, statement_id: str | None) -> list[tuple[str, str]]:
    """The facts that say which statement this is and whether it is booked."""
    cited = [("Statement", statement_id)] if statement_id else []
    return [*cited, ("Status", summary.status_text())]


def change_text(current: Decimal, previous: Decimal | None, previous_period: str) -> str:
    """``+5.2 % (+61.00) vs 2026-09``; a plain sentence when there is nothing to compare."""
    if previous is None:
        return f"no statement for {previous_period}"
    delta = current - previous
    amount = f"{'+' if delta >= 0 else '−'}{money(abs(delta))}"
    pct = percent_of(delta, previous)
    if pct is None:
        return f"{amount} vs {previous_period} (0.00)"
    return f"{'+' if pct >= 0 else '−'}{abs(pct):.1f} % ({amount}) vs {previous_period}"


def month_name(period: str) -> str:
    year, month = (int(part) for part in period.split("-"))
    return date(year, month, 1).strftime("%B %Y")


@dataclass(frozen=True)
class Section:
    title: str | None
    facts: list[tuple[str, str]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


def compose_message(
    *,
    subject: str,
    recipient: str,
    envelope: Envelope,
    message_id: str,
    heading: str,
    intro: str,
    sections: Sequence[Section],
    footer: str,
    attachments: Iterable[Attachment],
    period: str,
) -> EmailMessage:
    """Every mail of the project is built here (statements and budget alerts), so all carry
    the same headers, an HTML and a plain-text part with the same content."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = envelope.from_address
    message["To"] = recipient
    if envelope.reply_to:
        message["Reply-To"] = envelope.reply_to
    message["Date"] = format_datetime(envelope.date)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message["X-Vapi-Chargeback-Period"] = period
    message.set_content(_plain(heading, intro, sections, footer))
    message.add_alternative(_html(heading, intro, sections, footer), subtype="html")
    for item in attachments:
        maintype, subtype = XLSX_TYPE if item.name.endswith(".xlsx") else CSV_TYPE
        message.add_attachment(item.data, maintype=maintype, subtype=subtype, filename=item.name)
    return message


_CELL = "padding:4px 10px;border-bottom:1px solid #e2e8f0;text-align:left"
_NUMBER = "padding:4px 10px;border-bottom:1px solid #e2e8f0;text-align:right"


def _html(heading: str, intro: str, sections: Sequence[Section], footer: str) -> str:
    """Inline styles only: many mail clients drop ``<style>`` blocks."""
    e = html.escape
    parts = [
        '<!DOCTYPE html><html><body style="font-family:Arial,Helvetica,sans-serif;'
        'font-size:14px;color:#1a202c">',
        f'<h2 style="margin:0 0 8px">{e(heading)}</h2>',
        f"<p>{e(intro)}</p>",
    ]
    for section in sections:
        if section.title:
            parts.append(f'<h3 style="margin:16px 0 4px">{e(section.title)}</h3>')
        if section.facts:
            parts.append('<table style="border-collapse:collapse">')
            parts += [
                f'<tr><th style="{_CELL}">{e(label)}</th><td style="{_CELL}">{e(value)}</td></tr>'
                for label, value in section.facts
            ]
            parts.append("</table>")
        if section.header:
            numeric = [
                all(_numeric(row[i]) or not row[i] for row in section.rows)
                for i in range(len(section.header))
            ]
            parts.append('<table style="border-collapse:collapse">')
            parts.append(
                "<tr>"
                + "".join(
                    f'<th style="{_NUMBER if right else _CELL}">{e(h)}</th>'
                    for h, right in zip(section.header, numeric, strict=True)
                )
                + "</tr>"
            )
            for row in section.rows:
                cells = "".join(
                    f'<td style="{_NUMBER if _numeric(value) else _CELL}">{e(value)}</td>'
                    for value in row
                )
                parts.append(f"<tr>{cells}</tr>")
            parts.append("</table>")
    parts.append(f'<p style="color:#4a5568;font-size:12px">{e(footer)}</p></body></html>')
    return "\n".join(parts)


def _plain(heading: str, intro: str, sections: Sequence[Section], footer: str) -> str:
    lines = [heading, "", intro, ""]
    for section in sections:
        if section.title:
            lines += [section.title, "-" * len(section.title)]
        width = max((len(label) for label, _ in section.facts), default=0)
        lines += [f"{label + ':':<{width + 1}} {value}" for label, value in section.facts]
        if section.header:
            table = [section.header, *section.rows]
            widths = [max(len(row[i]) for row in table) for i in range(len(section.header))]
            for row in table:
                lines.append(
                    "  ".join(
                        value.rjust(w) if _numeric(value) else value.ljust(w)
                        for value, w in zip(row, widths, strict=True)
                    ).rstrip()
                )
        lines.append("")
    lines.append(footer)
    return "\n".join(lines) + "\n"


def _numeric(value: str) -> bool:
    return bool(value) and value.replace(",", "").replace(".", "", 1).lstrip("+-−").isdigit()


def _csv_lines(data: bytes) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
    return [{key: _unprotect(value or "") for key, value in row.items()} for row in reader]


def _unprotect(text: str) -> str:
    """Undo the CSV writer's ``'`` guard against formula injection, for display in a mail."""
    return text[1:] if text.startswith("'") and looks_like_formula(text[1:]) else text


def _first(lines: list[dict[str, str]], column: str) -> str | None:
    return lines[0][column] if lines else None


def _shared(lines: list[dict[str, str]]) -> dict[str, Decimal]:
    pools: dict[str, Decimal] = {}
    for line in lines:
        if line["allocation"].startswith(SHARED_PREFIX):
            pool = line["allocation"].removeprefix(SHARED_PREFIX)
            pools[pool] = pools.get(pool, ZERO) + Decimal(line["cost_usd"])
    return pools


def _assistants(lines: list[dict[str, str]]) -> list[AssistantCost]:
    """Direct lines summed per (assistant, team), most expensive first, ties by id."""
    sums: dict[tuple[str, str], list[Any]] = {}
    for line in lines:
        if line["allocation"].startswith(SHARED_PREFIX):
            continue
        key = (line["assistant_id"], line["team"])
        entry = sums.setdefault(key, [0, ZERO, ZERO, line.get("assistant_name", "")])
        entry[0] += int(line["calls"])
        entry[1] += Decimal(line["minutes"])
        entry[2] += Decimal(line["cost_usd"])
    items = [
        AssistantCost(assistant, team, calls, minutes, cost, name)
        for (assistant, team), (calls, minutes, cost, name) in sums.items()
    ]
    return sorted(items, key=lambda a: (-a.cost_usd, a.assistant_id, a.team))


def _assistant_label(assistant: AssistantCost) -> str:
    """The name the statement shows, beside the id in its own column; a name that is only
    the id (none was known) is not repeated."""
    if not assistant.assistant_id:
        return "(no assistant)"
    if assistant.name and assistant.name != assistant.assistant_id:
        return assistant.name
    return "(no name)"
