"""``chargeback.yaml`` as a validated object (the mapping CSV beside it: ``mapping.py``).

The file is written by people, so every problem is reported at once, each naming the
file, the line (where the YAML has one), the field path and what to change. It is
checked before anything else runs: a bad config never gets as far as writing a file.
YAML numbers with a fraction are read as ``Decimal`` straight from their text, so a
money amount never passes through a float.

It is bounded (``MAX_CONFIG_BYTES``, far above any real org) so that a wrong path — a
log, a data dump — fails at once instead of exhausting a worker. Text that ends up in a
spreadsheet cell (names, titles) must be printable: a control character cannot be
stored in a workbook. A name may begin with ``=`` or ``+``; the writers store such text
as text, never as a formula.

A cost center can be retired (``valid_to``) and still be named by the mapping rows of
the months it was charged, so old months rerun unchanged while nothing new reaches it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from vapi_chargeback.analytics.models import (
    DATE_KEY,
    GROUP_BYS,
    VARIABLE_KEY_MAX_LENGTH,
    field_path,
)
from vapi_chargeback.budgets.settings import Budget, DailySettings
from vapi_chargeback.close.ids import DEFAULT_PREFIX, StatementPrefixError, validate_prefix
from vapi_chargeback.close.invoices import INVOICES_NAME
from vapi_chargeback.close.tieout import DEFAULT_TOLERANCE_PCT
from vapi_chargeback.config_checks import cross_check_problems
from vapi_chargeback.exports.accounts import Account, GlSettings
from vapi_chargeback.fxrates import FxSettings, check_currency
from vapi_chargeback.inputfiles import InputFileError
from vapi_chargeback.inputfiles import read_bounded as read_input_file
from vapi_chargeback.mapping_rules import MappingRule
from vapi_chargeback.money import CENT, HUNDRED
from vapi_chargeback.verify.settings import VerificationSettings
from vapi_chargeback.yamldoc import Loc, index_lines, read_yaml
from vapi_chargeback.zones import timezone_problem

if TYPE_CHECKING:
    from vapi_chargeback.period import StatementPeriod

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}$"
"""Cost-center ids, pool names and definition ids reach file and sheet names."""
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
MAX_CONFIG_BYTES = 1 << 20
"""1 MiB: a config with a thousand cost centers and their queries is a few hundred KB."""

Component = Literal["transport", "stt", "llm", "tts", "vapi"]
"""Cost components with an analytics column ``costBreakdown.<component>``."""
Dimension = Literal["type", "endedReason", "analysis.successEvaluation", "status", "assistantId"]
DefinitionStep = Literal["day", "week", "month"]
Metric = Literal[
    "calls",
    "minutes",
    "cost",
    "transport",
    "stt",
    "llm",
    "tts",
    "vapi",
    "avg_cost_per_call",
    "avg_minutes_per_call",
    "avg_cost_per_minute",
]
"""Sums and counts the API returns, and averages derived from them (never ``avg`` operations,
which cannot be re-aggregated across days or merged rows)."""
Approval = Literal["manual", "auto"]
Method = Literal["even", "proportional", "fixed"]
Driver = Literal["cost", "minutes", "calls"]
PoolSource = Literal["calls-without-assistant"]

COMPONENTS: tuple[str, ...] = get_args(Component)
DIMENSIONS: tuple[str, ...] = get_args(Dimension)
METRICS: tuple[str, ...] = get_args(Metric)

_RESERVED_ROW_KEYS = frozenset({DATE_KEY, *GROUP_BYS})
_RESERVED_KEY_PREFIXES = ("sum_", "count_")
"""The plan's operation aliases start with these; a variable key must not collide with them."""
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
"""A calendar date as people write it in the config and the mapping: ``YYYY-MM-DD``."""


class ConfigError(InputFileError):
    """Every problem found in one config or mapping file, each a self-contained sentence."""


def _reject_float(value: object) -> object:
    """Money must not pass through binary floating point on its way in."""
    if isinstance(value, float):
        raise ValueError(
            f"{value!r} is a float; pass money as Decimal, int or a numeric string"
            " (YAML numbers are read as Decimal already)"
        )
    return value


Money = Annotated[
    Decimal,
    BeforeValidator(_reject_float),
    Field(strict=False, allow_inf_nan=False),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\d+(\.\d+)?$"},
            ]
        }
    ),
]


def _iso_date(value: object) -> object:
    """A YAML date, or its quoted ``YYYY-MM-DD`` text; never a timestamp or a number."""
    if isinstance(value, datetime):
        raise ValueError(f"{value} has a time of day; write the date alone as YYYY-MM-DD")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and ISO_DATE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date; write it as YYYY-MM-DD")


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]
Email = Annotated[str, Field(pattern=EMAIL_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def _printable(value: str) -> str:
    """Names and titles reach spreadsheet cells, which cannot hold control characters."""
    if not value.isprintable():
        raise ValueError(f"{value!r} contains a control character; remove it")
    return value


class Org(_Strict):
    name: str = Field(min_length=1)
    timezone: str
    """IANA ``Area/Location`` zone (or ``UTC``) whose calendar defines the statement month
    and the day of each call."""

    _name = field_validator("name")(_printable)

    @field_validator("timezone")
    @classmethod
    def _iana(cls, value: str) -> str:
        problem = timezone_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class QueryDefinition(_Strict):
    """A breakdown a cost-center owner wants on their statement."""

    id: Slug
    title: str = Field(min_length=1, max_length=80)
    dimensions: list[Dimension] = Field(default_factory=list)
    step: DefinitionStep | None = None
    """Time bucket of the breakdown's rows in the org zone; none = the whole month."""
    metrics: list[Metric] = Field(min_length=1)

    _title = field_validator("title")(_printable)

    @field_validator("dimensions", "metrics")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        _require_unique(values)
        return values


class CostCenter(_Strict):
    id: Slug
    name: str = Field(min_length=1)
    owner_email: Email
    queries: list[QueryDefinition] = Field(default_factory=list)
    valid_to: IsoDate | None = None
    """Last day it is charged (inclusive, org calendar): a retired cost center stays here so
    that the mapping rows of its past months still load; no row may charge it later, and
    from the month after this day on it gets no shared costs, variable-value charges or
    statement (see :meth:`ChargebackConfig.for_period`)."""
    gl_account: Account | None = None
    """Expense account its cost is debited to in the journal; none = ``gl.expense_account``."""
    owner_groups: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    """Auth-manager roles (with FAB: role names, which LDAP/OAuth groups map to) whose members
    see this cost center's workbook on the statements page, besides ``owner_email``."""

    _name = field_validator("name")(_printable)


class SharedPool(_Strict):
    """A cost no call carries (platform fee, phone numbers …) or one re-spread on purpose."""

    name: Slug
    amount: Money | None = None
    """Fixed monthly amount in the org currency, in units with at most 2 decimal places, not
    in cents: ``100000`` is 100,000.00 USD, ``2500.50`` is 2,500.50 USD."""
    source: PoolSource | None = None
    """``calls-without-assistant``: the cost of calls with no assistant, re-spread instead of left unallocated."""
    method: Method
    driver: Driver | None = None
    """For ``proportional``: what each cost center's share is proportional to."""
    percentages: dict[str, Money] | None = None
    """For ``fixed``: cost-center id → percentage; they sum to exactly 100."""

    @field_validator("amount")
    @classmethod
    def _cents(cls, value: Decimal | None) -> Decimal | None:
        if value is not None:
            if value < 0:
                raise ValueError(f"amount {value} is negative; shared costs are >= 0")
            if value != value.quantize(CENT):
                raise ValueError(
                    f"amount {value} has more than 2 decimal places; round it to cents"
                )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SharedPool:
        problems = []
        if (self.amount is None) == (self.source is None):
            problems.append("set exactly one of 'amount' (a fixed monthly cost) or 'source'")
        if self.method == "proportional" and self.driver is None:
            problems.append("method 'proportional' needs 'driver: cost|minutes|calls'")
        if self.method != "proportional" and self.driver is not None:
            problems.append(f"'driver' only applies to method 'proportional', not {self.method!r}")
        if self.method == "fixed" and not self.percentages:
            problems.append("method 'fixed' needs 'percentages: {cost_center_id: pct}'")
        if self.method != "fixed" and self.percentages is not None:
            problems.append(f"'percentages' only apply to method 'fixed', not {self.method!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class DeliverySettings(_Strict):
    """How the ``deliver`` task e-mails a published month (SMTP server and TLS: the connection)."""

    from_email: Email | None = None
    """Sender address; when empty, the SMTP connection's ``from_email`` extra is used."""
    reply_to: Email | None = None
    """Where owners' replies go, e.g. the finance mailbox; none = back to ``from_email``."""
    smtp_conn_id: str = Field(default="smtp_default", min_length=1, max_length=250)
    """Airflow connection of the SMTP server (host, port, login, TLS options in its extra)."""
    subject_prefix: str = Field(default="[Vapi chargeback]", max_length=60)
    top_assistants: int = Field(default=5, ge=0, le=50)
    """How many assistants the owner's summary lists, most expensive first."""
    max_attempts: int = Field(default=3, ge=1, le=10)
    """Tries per message within one task run for temporary failures (SMTP 4xx, lost connection)."""
    retry_backoff_seconds: int = Field(default=10, ge=0, le=600)
    """Wait before the second try; doubled for each further try."""


class RetentionSettings(_Strict):
    """How long run work folders (``_runs/``: plan, raw responses, statement) are kept."""

    runs_days: int = Field(default=30, ge=1, le=3650)
    """Work folders untouched for this many days are removed after a run publishes; the
    folder of every published version's run and any folder in use are always kept."""


class ChargebackConfig(_Strict):
    """The whole of ``chargeback.yaml``."""

    org: Org
    currency: Literal["USD"] = "USD"
    output: str | None = Field(default=None, min_length=1)
    """Storage URL for statements; the Airflow Variable ``vapi_chargeback_output`` overrides it."""
    mapping: str = Field(default="assistant_teams.csv", min_length=1)
    """Path of the assistant → team mapping CSV, relative to this file unless absolute."""
    mapping_rules: list[MappingRule] = Field(default_factory=list)
    """Tried in order after the mapping CSV's row valid that day, before ``UNALLOCATED``:
    cost centers from assistant metadata and names (``mapping_rules``)."""
    components: list[Component] = Field(min_length=1)
    """Cost components reported as columns, in this order."""
    variable_key: str = Field(min_length=1, max_length=VARIABLE_KEY_MAX_LENGTH)
    """Call-level variable whose value, when it names a cost center, allocates the call to it."""
    settlement_delay_hours: int = Field(default=0, ge=0, le=24 * 31)
    finance_email: Email
    alerts_email: Email | None = None
    """Who hears of a chargeback task that failed for good (one mail per failed task, over
    ``delivery.smtp_conn_id``); none = no failure mails."""
    cost_centers: list[CostCenter] = Field(min_length=1)
    shared_costs: list[SharedPool] = Field(default_factory=list)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    """E-mail of the published statements to owners and finance."""
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    """Removal of old run work folders under ``_runs/``."""
    approval: Approval = "manual"
    """``manual``: a published month is a draft until finance approves it in the DAG's
    review step; ``auto``: the run approves its own draft (an org without a human step)."""
    approval_timeout_days: int = Field(default=7, ge=1, le=90)
    """How long the review step waits for an answer; then the draft stays a draft."""
    approvers: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    """Airflow users (user names or e-mails) the review step is assigned to: only they may
    answer it, in the UI or over REST; none = anyone allowed to answer the DAG's actions."""
    deliver_drafts: bool = False
    """Also e-mail drafts (marked DRAFT); by default only an approved month is mailed."""
    statement_prefix: str = DEFAULT_PREFIX
    """Starts every statement id, ``{prefix}-{YYYY-MM}-{cost_center_id|ORG}-v{N}``."""
    invoice_tolerance_pct: Money = DEFAULT_TOLERANCE_PCT
    """How far (percent of the month's Vapi usage) the invoice may differ from the statement
    and the month still be approved; the difference is booked as ``adjustment:invoice``."""
    invoices: str = Field(default=INVOICES_NAME, min_length=1)
    """Vapi's invoices per month (``period,invoice_id,amount_usd``), relative to this file
    unless absolute; optional: without it no month is tied to an invoice."""
    reporting_currency: str | None = None
    """ISO 4217 code (``EUR``) the statements also show their money in, at the rate ``fx``
    picks for the month; none = USD only."""
    fx: FxSettings = Field(default_factory=FxSettings)
    """The reporting currency's rates file and which of its rates a month is converted at."""
    gl: GlSettings | None = None
    """General-ledger accounts of the month's journal entry; without it no journal is written."""
    budgets: dict[str, Budget] = Field(default_factory=dict)
    """Cost center id → its monthly budget and alert thresholds (``budgets.settings``)."""
    daily: DailySettings = Field(default_factory=DailySettings)
    """The daily month-to-date run: its local start time and how many assistants it lists."""
    verification: VerificationSettings = Field(default_factory=VerificationSettings)
    """Recounting the month from call records (``verify``) and its tolerances."""

    _sha256: str | None = PrivateAttr(default=None)

    @field_validator("components")
    @classmethod
    def _unique_components(cls, values: list[str]) -> list[str]:
        _require_unique(values)
        return values

    @field_validator("statement_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        try:
            return validate_prefix(value)
        except StatementPrefixError as error:
            # The path names the field already: "statement_prefix: 'X' cannot start …".
            raise ValueError(str(error).removeprefix("statement_prefix ")) from None

    @field_validator("reporting_currency")
    @classmethod
    def _iso_currency(cls, value: str | None) -> str | None:
        return None if value is None else check_currency(value)

    @field_validator("invoice_tolerance_pct")
    @classmethod
    def _percentage(cls, value: Decimal) -> Decimal:
        if not 0 <= value <= HUNDRED:
            raise ValueError(f"{value} is not a percentage from 0 to 100")
        return value

    @field_validator("variable_key")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in _RESERVED_ROW_KEYS or value.startswith(_RESERVED_KEY_PREFIXES):
            raise ValueError(
                f"{value!r} collides with a key of the analytics result rows"
                f" ({', '.join(sorted(_RESERVED_ROW_KEYS))}, sum_*, count_*); pick another key"
            )
        return value

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> ChargebackConfig:
        if info.context and info.context.get("defer_cross_checks"):
            return self
        problems = cross_check_problems(self.model_dump())
        if problems:
            raise ValueError("; ".join(f"{field_path(loc)}: {msg}" for loc, msg in problems))
        return self

    @property
    def timezone(self) -> str:
        return self.org.timezone

    @property
    def sha256(self) -> str | None:
        """sha256 of the file's bytes when loaded by ``load_config``, for provenance."""
        return self._sha256

    @property
    def cost_center_ids(self) -> list[str]:
        return [center.id for center in self.cost_centers]

    @property
    def cost_center_ends(self) -> dict[str, date]:
        """Retired (or retiring) cost center id → its last day."""
        return {c.id: c.valid_to for c in self.cost_centers if c.valid_to is not None}

    def for_period(self, period: StatementPeriod) -> ChargebackConfig:
        """This config as one statement month sees it: without the cost centers that ended
        before the month began.

        Whoever plans, allocates or delivers a month reads this, so a retired cost center
        gets no query, no variable-value charge, no share of a pool and no statement once
        it has ended; through the month that holds its ``valid_to`` it is a cost center like
        any other, so the months it was charged rerun unchanged. A ``fixed`` pool spreads
        an ended cost center's percentage over the rest in proportion to theirs. Returns
        ``self`` when nothing has ended, so such months are planned from the very same
        object.
        """
        first = period.first_day
        ended = {c.id for c in self.cost_centers if c.valid_to is not None and c.valid_to < first}
        if not ended:
            return self
        where = f"{period.label} (from {first})"
        active = [center for center in self.cost_centers if center.id not in ended]
        if not active:
            raise ConfigError(
                "chargeback.yaml",
                [
                    f"cost_centers: every cost center ended (valid_to) before {where}; there"
                    " is no one to charge: add a cost center without valid_to, or do not run"
                    " this month"
                ],
            )
        pools, problems = [], []
        for index, pool in enumerate(self.shared_costs):
            if pool.percentages is None:
                pools.append(pool)
                continue
            kept = {k: v for k, v in pool.percentages.items() if k not in ended}
            if not any(kept.values()):
                problems.append(
                    f"shared_costs[{index}].percentages: every cost center with a share"
                    f" ({', '.join(sorted(k for k, v in pool.percentages.items() if v))})"
                    f" ended before {where}; give a share to one still charged"
                )
            pools.append(pool.model_copy(update={"percentages": kept}))
        if problems:
            raise ConfigError("chargeback.yaml", problems)
        return self.model_copy(update={"cost_centers": active, "shared_costs": pools})

    def cost_center(self, cost_center_id: str) -> CostCenter:
        for center in self.cost_centers:
            if center.id == cost_center_id:
                return center
        raise KeyError(f"no cost center {cost_center_id!r} in the config")


def _require_unique(values: Sequence[str]) -> None:
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise ValueError(f"{', '.join(map(repr, repeated))} listed more than once; list each once")


def load_config(path: str | Path) -> ChargebackConfig:
    """Read and validate ``chargeback.yaml``; raise ``ConfigError`` listing every problem."""
    path = Path(path)
    raw = read_bounded(path, MAX_CONFIG_BYTES, "chargeback.yaml")
    source = str(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(source, [f"{source}: not UTF-8 ({error}); save it as UTF-8"]) from None
    try:
        node, data = read_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(
            source, [f"{where}: YAML syntax error: {problem}; fix the YAML"]
        ) from None
    if node is None or not isinstance(data, dict):
        raise ConfigError(
            source, [f"{source}:1: expected a mapping of settings (org:, cost_centers: …)"]
        )
    lines: dict[Loc, int] = {}
    problems = [f"{source}:{line}: {message}" for line, message in index_lines(node, (), lines)]
    located: list[tuple[Loc, str]] = []
    config = None
    try:
        config = ChargebackConfig.model_validate(data, context={"defer_cross_checks": True})
    except ValidationError as error:
        located += _pydantic_problems(error)
    located += cross_check_problems(data)
    problems += [
        message for _, message in sorted(_located(source, lines, loc, msg) for loc, msg in located)
    ]
    if problems or config is None:
        raise ConfigError(source, problems)
    config._sha256 = hashlib.sha256(raw).hexdigest()
    return config


def _pydantic_problems(error: ValidationError) -> Iterator[tuple[Loc, str]]:
    for item in error.errors():
        loc = tuple(part for part in item["loc"] if not _is_union_tag(part))
        message = item["msg"].removeprefix("Value error, ")
        kind = item["type"]
        if kind == "extra_forbidden":
            message = "unknown field; remove it or fix its spelling (see chargeback.schema.json)"
        elif kind == "missing":
            message = "required field missing; add it"
        elif kind == "string_pattern_mismatch" and loc and loc[-1] in ("id", "name"):
            message = (
                f"{item['input']!r} is not a slug: use 1-40 lowercase letters, digits and '-',"
                " starting with a letter or digit (it becomes part of file names)"
            )
        elif kind == "string_pattern_mismatch" and "email" in str(loc[-1] if loc else ""):
            message = f"{item['input']!r} is not an e-mail address"
        elif kind in ("decimal_parsing", "finite_number", "decimal_type"):
            message = f"{item['input']!r} is not a finite decimal; write a number like 250.00"
        elif kind == "literal_error":
            message = (
                f"{item['input']!r} is not allowed: {message.removeprefix('Input should be ')}"
            )
        yield loc, message


def _is_union_tag(part: int | str) -> bool:
    return isinstance(part, str) and part.startswith(("function-", "literal["))


def _located(source: str, lines: dict[Loc, int], loc: Loc, message: str) -> tuple[int, str]:
    """``file:line: field.path: message``, with the nearest line the YAML has for the path."""
    line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), 0)
    return line, f"{source}:{line}: {field_path(loc) or '(top level)'}: {message}"


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """The file's bytes, refusing to read more than ``limit`` of them."""
    return read_input_file(
        path, limit, f"a {what}", ConfigError, missing="file not found; check the path"
    )


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema editors use to check ``chargeback.yaml`` as it is typed."""
    schema = ChargebackConfig.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "chargeback.schema.json",
        **schema,
    }


def render_json_schema() -> str:
    return json.dumps(config_json_schema(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    """``python -m vapi_chargeback.config > include/config/chargeback.schema.json``."""
    print(render_json_schema(), end="")


if __name__ == "__main__":
    main()
