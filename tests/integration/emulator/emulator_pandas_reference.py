"""An independent answer to analytics queries, for the emulator's property test.

Nothing here is shared with the emulator: buckets come from pandas' own time-zone
conversion and period arithmetic, aggregates from Python ``Decimal`` over plain lists,
concurrency from a quadratic count. Semantics follow DESIGN §4 and the README's
choices (history series step = the query's step, else day; averages and minutes
rounded half-even to 10 places; rows ordered by date, then keys, nulls last).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

import pandas as pd

PLACES = Decimal("1e-10")
SUB_DAY = {"second": "s", "minute": "min", "hour": "h"}
MONEY = {
    "cost": "cost",
    "costBreakdown.llm": "llm",
    "costBreakdown.stt": "stt",
    "costBreakdown.transcriber": "stt",
    "costBreakdown.tts": "tts",
    "costBreakdown.vapi": "vapi",
    "costBreakdown.transport": "transport",
    "costBreakdown.analysisBreakdown.summary": "summary",
}
INTEGERS = {
    "costBreakdown.llmPromptTokens": "prompt",
    "costBreakdown.llmCompletionTokens": "completion",
    "costBreakdown.llmCachedPromptTokens": "cached",
    "costBreakdown.ttsCharacters": "characters",
}
GROUPS = {
    "type": "type",
    "assistantId": "assistant",
    "endedReason": "reason",
    "analysis.successEvaluation": "success",
    "status": "status",
}


@dataclass(frozen=True)
class Call:
    """One synthetic call; instants as aware UTC datetimes, money as Decimal."""

    id: str
    created: datetime
    started: datetime | None
    ended: datetime | None
    type: str
    status: str
    reason: str | None
    assistant: str | None
    success: str | None
    variables: dict[str, str | None] | None
    money: dict[str, Decimal | None]
    integers: dict[str, int | None]

    def record(self) -> dict[str, Any]:
        """The call as a Vapi ``Call`` JSON object (money as ``Decimal`` for ``encode``)."""
        breakdown: dict[str, Any] = {
            key: self.money[key]
            for key in ("llm", "stt", "tts", "vapi", "transport")
            if self.money[key] is not None
        }
        names = {
            "prompt": "llmPromptTokens",
            "completion": "llmCompletionTokens",
            "cached": "llmCachedPromptTokens",
            "characters": "ttsCharacters",
        }
        breakdown |= {
            names[key]: value for key, value in self.integers.items() if value is not None
        }
        if self.money["summary"] is not None:
            breakdown["analysisCostBreakdown"] = {"summary": self.money["summary"]}
        record: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "status": self.status,
            "endedReason": self.reason,
            "assistantId": self.assistant,
            "createdAt": iso(self.created),
            "startedAt": iso(self.started) if self.started else None,
            "endedAt": iso(self.ended) if self.ended else None,
            "cost": self.money["cost"],
            "costBreakdown": breakdown,
            "analysis": {"successEvaluation": self.success},
        }
        if self.variables is not None:
            record["assistantOverrides"] = {"variableValues": self.variables}
        return record


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def encode(value: Any) -> str:
    """JSON with Decimals as bare numbers in plain notation."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f'"{key}":{encode(item)}' for key, item in value.items()) + "}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def bucket_instants(created: pd.Series, step: str, zone: str) -> pd.Series:
    """Bucket start per call, as ISO UTC strings with milliseconds."""
    local = created.dt.tz_convert(zone)
    wall = local.dt.tz_localize(None)
    offset = wall - created.dt.tz_localize(None)
    if step in SUB_DAY:
        instants = wall.dt.floor(SUB_DAY[step]) - offset
    else:
        day = wall.dt.normalize()
        year = day.dt.year
        if step == "day":
            start = day
        elif step == "week":
            start = day - pd.to_timedelta(day.dt.day_of_week, unit="D")
        elif step in ("month", "quarter", "year"):
            start = day.dt.to_period(
                {"month": "M", "quarter": "Q", "year": "Y"}[step]
            ).dt.start_time
        else:
            first_year = {
                "decade": year // 10 * 10,
                "century": (year - 1) // 100 * 100 + 1,
                "millennium": (year - 1) // 1000 * 1000 + 1,
            }[step]
            start = pd.to_datetime(pd.DataFrame({"year": first_year, "month": 1, "day": 1}))
        instants = (
            start.dt.tz_localize(zone, ambiguous="raise", nonexistent="raise")
            .dt.tz_convert("UTC")
            .dt.tz_localize(None)
        )
    return instants.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"


def rounded(value: Decimal) -> Decimal:
    with localcontext() as context:
        context.prec = 80
        return value.quantize(PLACES, rounding=ROUND_HALF_EVEN)


def divide(numerator: Decimal, denominator: int) -> Decimal:
    with localcontext() as context:
        context.prec = 80
        return numerator / Decimal(denominator)


def duration(call: Call) -> Decimal | None:
    if call.started is None or call.ended is None:
        return None
    delta = call.ended - call.started
    return Decimal((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds).scaleb(
        -6
    )


def concurrency(calls: list[Call]) -> list[int]:
    """For every call with both instants: itself plus the others active at its start."""
    timed = [
        c for c in calls if c.started is not None and c.ended is not None and c.ended >= c.started
    ]
    values = []
    for call in timed:
        assert call.started is not None
        others = sum(
            1
            for other in timed
            if other is not call and other.started <= call.started < other.ended  # type: ignore[operator]
        )
        values.append(1 + others)
    return values


def column_values(calls: list[Call], column: str) -> list[Any]:
    """The non-null per-call values of a column (seconds for duration and minutesUsed)."""
    if column in MONEY:
        values = [c.money[MONEY[column]] for c in calls]
    elif column in INTEGERS:
        values = [c.integers[INTEGERS[column]] for c in calls]
    elif column in ("duration", "minutesUsed"):
        values = [duration(c) for c in calls]
    elif column == "id":
        values = [c.id for c in calls]
    else:
        return list(concurrency(calls))
    return [value for value in values if value is not None]


def aggregate(operation: str, column: str, calls: list[Call]) -> Any:
    values = column_values(calls, column)
    minutes = column == "minutesUsed"
    if operation == "count":
        return len(values)
    if operation == "sum":
        total = sum(values, Decimal(0)) if values else Decimal(0)
        return rounded(divide(Decimal(total), 60)) if minutes else total
    if operation == "avg":
        if not values:
            return None
        mean = divide(Decimal(sum(values, Decimal(0))), len(values))
        return rounded(divide(mean, 60) if minutes else mean)
    extreme = (min if operation == "min" else max)(values) if values else None
    if extreme is None or column == "id":
        return extreme
    return rounded(divide(Decimal(extreme), 60)) if minutes else extreme


def history(column: str, calls: list[Call], series: list[str]) -> list[dict[str, Any]]:
    points = []
    for bucket in sorted(set(series)):
        members = [call for call, value in zip(calls, series, strict=True) if value == bucket]
        if column == "concurrency":
            peaks = concurrency(members)
            if not peaks:
                continue
            value: Any = max(peaks)
        elif column == "id":
            value = len(members)
        else:
            value = aggregate("sum", column, members)
        points.append({"date": bucket, "value": value})
    return points


def answer(
    calls: list[Call], query: dict[str, Any], start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """The ``result`` rows the emulator must return for ``query`` over ``calls``."""
    time_range = query.get("timeRange", {})
    step = time_range.get("step")
    zone = time_range.get("timezone") or "UTC"
    scoped = [call for call in calls if start <= call.created < end]
    if not scoped:
        return []
    created = pd.Series(pd.to_datetime([call.created for call in scoped], utc=True))
    rows_bucket = bucket_instants(created, step, zone).tolist() if step else [None] * len(scoped)
    series_bucket = bucket_instants(created, step or "day", zone).tolist()
    group_by = list(dict.fromkeys(query.get("groupBy", [])))
    keys = list(dict.fromkeys(item["key"] for item in query.get("groupByVariableValue", [])))
    frame = pd.DataFrame(
        {
            "position": range(len(scoped)),
            "bucket": rows_bucket,
            **{
                f"g{i}": [getattr(c, GROUPS[name]) for c in scoped]
                for i, name in enumerate(group_by)
            },
            **{
                f"v{i}": [(c.variables or {}).get(key) for c in scoped]
                for i, key in enumerate(keys)
            },
        },
        dtype=object,
    )
    key_columns = [
        "bucket",
        *(f"g{i}" for i in range(len(group_by))),
        *(f"v{i}" for i in range(len(keys))),
    ]
    rows = []
    for group_key, members in frame.groupby(key_columns, dropna=False, sort=False):
        values = [None if pd.isna(value) else value for value in group_key]
        group_calls = [scoped[p] for p in members["position"]]
        group_series = [series_bucket[p] for p in members["position"]]
        row: dict[str, Any] = {"date": values[0]} if step else {}
        row |= dict(zip([*group_by, *keys], values[1:], strict=True))
        for item in query["operations"]:
            name = item.get("alias") or item["operation"] + "".join(
                p[:1].upper() + p[1:] for p in item["column"].split(".")
            )
            if item["operation"] == "history":
                row[name] = history(item["column"], group_calls, group_series)
            else:
                row[name] = aggregate(item["operation"], item["column"], group_calls)
        rows.append((tuple((value is None, value or "") for value in values), row))
    rows.sort(key=lambda pair: pair[0])
    return [row for _, row in rows]
