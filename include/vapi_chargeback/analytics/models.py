"""Pydantic models of every schema in the Vapi Analytics OpenAPI spec.

One class per schema, enums as ``Literal``, the spec's descriptions as field docstrings.
Requests are strict (unknown fields and values are errors, so a typo fails here and not
as a silent wrong number on a statement); results are tolerant of fields the spec does
not list yet. ``tests/unit/analytics/test_models.py`` checks every enum and limit against
the copy of the spec shipped beside this file, so the two cannot drift apart.
"""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Any, Literal, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

Table = Literal["call", "subscription"]
GroupBy = Literal["type", "assistantId", "endedReason", "analysis.successEvaluation", "status"]
Operation = Literal["sum", "avg", "count", "min", "max", "history"]
Column = Literal[
    "id",
    "cost",
    "costBreakdown.llm",
    "costBreakdown.stt",
    "costBreakdown.tts",
    "costBreakdown.vapi",
    "costBreakdown.transport",
    "costBreakdown.analysisBreakdown.summary",
    "costBreakdown.transcriber",
    "costBreakdown.ttsCharacters",
    "costBreakdown.llmPromptTokens",
    "costBreakdown.llmCompletionTokens",
    "costBreakdown.llmCachedPromptTokens",
    "duration",
    "concurrency",
    "minutesUsed",
]
Step = Literal[
    "second",
    "minute",
    "hour",
    "day",
    "week",
    "month",
    "quarter",
    "year",
    "decade",
    "century",
    "millennium",
]

TABLES: tuple[str, ...] = get_args(Table)
GROUP_BYS: tuple[str, ...] = get_args(GroupBy)
OPERATIONS: tuple[str, ...] = get_args(Operation)
COLUMNS: tuple[str, ...] = get_args(Column)
STEPS: tuple[str, ...] = get_args(Step)

NAME_MAX_LENGTH = 40
ALIAS_MAX_LENGTH = 40
VARIABLE_KEY_MAX_LENGTH = 100

DATE_KEY = "date"
"""Rows of a query with a ``step`` carry their bucket under this key."""
DEFAULT_MAX_QUERIES_PER_REQUEST = 20
"""Queries per ``POST /analytics`` unless configured: our batching default, not a limit of
the spec. It sits beside the request models so the planner shares it with the client
without importing HTTP."""


@cache
def _iana_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def is_iana_timezone(name: str) -> bool:
    """True for names of the tz database (``Europe/Berlin``, ``UTC``), false for offsets like ``+02:00``."""
    return name in _iana_zones()


class _Request(BaseModel):
    """Base of request models: unknown fields are errors, camelCase on the wire."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    def to_wire(self) -> dict[str, Any]:
        """The JSON the spec describes: aliases, no nulls for fields left unset."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class AnalyticsOperation(_Request):
    operation: Operation
    """This is the aggregation operation you want to perform."""

    column: Column
    """This is the columns you want to perform the aggregation operation on."""

    alias: str | None = Field(default=None, max_length=ALIAS_MAX_LENGTH)
    """This is the alias for column name returned. Defaults to `${operation}${column}`."""

    @property
    def result_key(self) -> str:
        """Key of this aggregate in a result row: the alias, else the real API's default name."""
        return self.alias or default_result_key(self.operation, self.column)


class VariableValueGroupBy(_Request):
    key: str = Field(max_length=VARIABLE_KEY_MAX_LENGTH)
    """This is the key of the variable value to group by."""


class TimeRange(_Request):
    step: Step | None = None
    """This is the time step for aggregations. If not provided, defaults to returning for the entire time range."""

    start: AwareDatetime | None = None
    """This is the start date for the time range. If not provided, defaults to the 7 days ago."""

    end: AwareDatetime | None = None
    """This is the end date for the time range. If not provided, defaults to now."""

    timezone: str | None = None
    """This is the timezone you want to set for the query. If not provided, defaults to UTC."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and not is_iana_timezone(value):
            raise ValueError(
                f"timezone {value!r} is not an IANA time zone name (e.g. 'Europe/Berlin', 'UTC')"
            )
        return value


class AnalyticsQuery(_Request):
    table: Table
    """This is the table you want to query."""

    group_by: list[GroupBy] | None = Field(default=None, alias="groupBy")
    """This is the list of columns you want to group by."""

    group_by_variable_value: list[VariableValueGroupBy] | None = Field(
        default=None, alias="groupByVariableValue"
    )
    """This is the list of variable value keys you want to group by."""

    name: str = Field(max_length=NAME_MAX_LENGTH)
    """This is the name of the query. This will be used to identify the query in the response."""

    time_range: TimeRange | None = Field(default=None, alias="timeRange")
    """This is the time range for the query."""

    operations: list[AnalyticsOperation]
    """This is the list of operations you want to perform."""


class AnalyticsQueryDTO(_Request):
    queries: list[AnalyticsQuery]
    """This is the list of metric queries you want to perform."""


class ResultTimeRange(BaseModel):
    """The effective time range a result echoes; tolerant, since it is the server's word."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    step: str | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    timezone: str | None = None


class AnalyticsQueryResult(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    name: str
    """This is the unique key for the query."""

    time_range: ResultTimeRange = Field(alias="timeRange")
    """This is the time range for the query."""

    result: list[dict[str, Any]]
    """A list of unique groups with the result of their aggregations."""


def default_result_key(operation: str, column: str) -> str:
    """The aggregate's key when no alias is set: ``sum`` + ``costBreakdown.llm`` → ``sumCostBreakdownLlm``."""
    return operation + "".join(part[:1].upper() + part[1:] for part in column.split("."))


def field_path(loc: tuple[int | str, ...]) -> str:
    """Render a pydantic error location as ``queries[2].operations[0].column``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def validation_messages(error: ValidationError) -> list[str]:
    """One readable line per problem, each naming the field path it is about."""
    messages = []
    for item in error.errors():
        loc = tuple(part for part in item["loc"] if not _is_union_tag(part))
        messages.append(f"{field_path(loc)}: {item['msg']}")
    return messages


def _is_union_tag(part: int | str) -> bool:
    return isinstance(part, str) and part.startswith(("function-", "literal["))
