"""Synthetic Vapi calls for the demo org, sampled with numpy as integer columns.

Everything here is integers: timestamps in epoch milliseconds, money in micro-dollars,
categories as codes into the name tuples below. ``engine.write_calls`` turns the codes
into Vapi ``Call`` records, so no binary float ever reaches a cost (a micro-dollar
amount becomes a 6-place decimal exactly).

Each month draws from its own generator seeded by ``(seed, year, month)``: a month's
calls are the same bytes whether it is generated alone or inside a longer run, and two
months never share call ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from vapi_emulator.org import COST_CENTER_TEAMS, TEAMS, DemoOrg

Ints = npt.NDArray[np.int64]
Progress = Callable[[str], None]

DEFAULT_CALLS_PER_MONTH = 20_000
DEFAULT_TIMEZONE = "Europe/Berlin"
"""The org's home zone: call volume follows its office hours and months are its calendar months."""

TYPES = ("inboundPhoneCall", "outboundPhoneCall", "webCall")
STATUSES = ("ended", "in-progress", "queued")
ENDED_REASONS = (
    "customer-ended-call",
    "assistant-ended-call",
    "assistant-said-end-call-phrase",
    "silence-timed-out",
    "assistant-forwarded-call",
    "voicemail",
    "customer-did-not-answer",
    "customer-busy",
    "customer-did-not-give-microphone-permission",
    "pipeline-error-openai-llm-failed",
    "phone-call-provider-closed-websocket",
    "exceeded-max-duration",
)
VARIABLE_COST_CENTERS = (*COST_CENTER_TEAMS, "legacy-crm", "")
"""``costCenter`` variable values: the real cost centers, an unknown one, and an empty string."""
CUSTOMER_TIERS = ("bronze", "silver", "gold")
ZERO_ASSISTANT_ID = "00000000-0000-0000-0000-000000000000"

NO_ASSISTANT = -2
ZERO_ASSISTANT = -1
NULL_CODE = -1
NULL_MS = -1

SHARE_NO_ASSISTANT = 0.03
SHARE_ZERO_ASSISTANT = 0.01
SHARE_IN_PROGRESS = 0.002
SHARE_QUEUED = 0.001
SHARE_COST_CENTER_VARIABLE = 0.08
COST_CENTER_VARIABLE_MIX = (0.2125, 0.2125, 0.2125, 0.2125, 0.10, 0.05)
SHARE_CUSTOMER_TIER = 0.12
CUSTOMER_TIER_MIX = (0.5, 0.35, 0.15)

WEEKDAY_WEIGHT = (1.10, 1.05, 1.0, 1.0, 0.90, 0.35, 0.20)
"""Monday first: busy early in the week, quiet at weekends."""
HOUR_WEIGHT = (
    *(0.05, 0.04, 0.03, 0.03, 0.04, 0.08, 0.15, 0.35),
    *(0.80, 1.20, 1.40, 1.35, 1.00, 1.15, 1.30, 1.25),
    *(1.10, 0.80, 0.50, 0.35, 0.25, 0.15, 0.10, 0.07),
)
"""Local hour 0…23: office hours with a lunch dip."""

_TYPE_MIX_BY_TEAM = {
    "inbound-sales": (0.75, 0.00, 0.25),
    "outbound-sales": (0.00, 0.95, 0.05),
    "tier1-support": (0.80, 0.00, 0.20),
    "billing-support": (0.85, 0.00, 0.15),
    "lead-qualification": (0.00, 0.60, 0.40),
    "scheduling": (0.50, 0.40, 0.10),
    "logistics": (0.30, 0.70, 0.00),
}
_TYPE_MIX_UNMAPPED = (0.50, 0.30, 0.20)

_REASON_MIX_BY_TYPE = (
    # inbound: customer hangs up or is transferred; no ringing outcomes
    (0.56, 0.15, 0.08, 0.08, 0.10, 0.00, 0.00, 0.00, 0.00, 0.01, 0.02, 0.00),
    # outbound: a third of the dials never reach a person
    (0.33, 0.14, 0.06, 0.04, 0.03, 0.17, 0.17, 0.05, 0.00, 0.01, 0.00, 0.00),
    # web: microphone permission is the web-only failure
    (0.58, 0.12, 0.09, 0.12, 0.00, 0.00, 0.00, 0.00, 0.07, 0.02, 0.00, 0.00),
)
_NOT_CONNECTED = (
    "customer-did-not-answer",
    "customer-busy",
    "customer-did-not-give-microphone-permission",
)
_CONVERSATION = (
    "customer-ended-call",
    "assistant-ended-call",
    "assistant-said-end-call-phrase",
    "silence-timed-out",
)
_REASON_DURATION = {
    # reason: (median seconds, sigma of the log-normal)
    "assistant-forwarded-call": (90.0, 0.6),
    "voicemail": (38.0, 0.35),
    "customer-did-not-answer": (28.0, 0.25),
    "customer-busy": (4.0, 0.4),
    "customer-did-not-give-microphone-permission": (9.0, 0.5),
    "pipeline-error-openai-llm-failed": (25.0, 1.0),
    "phone-call-provider-closed-websocket": (60.0, 1.0),
}
_CONVERSATION_SIGMA = 0.8
_CONVERSATION_MEDIAN_BY_COST_CENTER = {
    "sales": 180.0,
    "support": 240.0,
    "marketing": 120.0,
    "operations": 150.0,
}
_CONVERSATION_MEDIAN_UNMAPPED = 160.0
_SUCCESS_RATE_BY_COST_CENTER = {
    "sales": 0.55,
    "support": 0.78,
    "marketing": 0.62,
    "operations": 0.8,
}
_SUCCESS_RATE_UNMAPPED = 0.6

MAX_DURATION_MS = 600_000
"""Vapi's default ``maxDurationSeconds``: longer calls end with ``exceeded-max-duration``."""
MS_PER_MINUTE = 60_000
TRANSPORT_MICRO_PER_MINUTE = 10_000
STT_MICRO_PER_MINUTE = 10_000
VAPI_MICRO_PER_MINUTE = 50_000
TTS_MICRO_PER_CHARACTER = 15
LLM_QUARTER_MICRO_PER_PROMPT_TOKEN = 10
LLM_QUARTER_MICRO_PER_CACHED_TOKEN = 5
LLM_QUARTER_MICRO_PER_COMPLETION_TOKEN = 40
SECONDS_PER_TURN = 9
PROMPT_TOKENS_PER_TURN = 900
CONTEXT_GROWTH_TOKENS = 35


@dataclass(frozen=True)
class MonthCalls:
    """One month of calls as parallel integer columns (see ``engine.write_calls`` for meaning)."""

    columns: dict[str, npt.NDArray[np.integer]]

    def __len__(self) -> int:
        return len(self.columns["created_ms"])


def parse_month(text: str) -> tuple[int, int]:
    """``YYYY-MM`` → (year, month), with an error that says what was expected."""
    try:
        parsed = datetime.strptime(text, "%Y-%m")
    except ValueError:
        raise ValueError(f"--month {text!r}: expected YYYY-MM, e.g. 2026-10") from None
    return parsed.year, parsed.month


def month_sequence(year: int, month: int, months: int) -> list[tuple[int, int]]:
    index = year * 12 + month - 1
    return [divmod(index + offset, 12) for offset in range(months)]


def month_bounds_ms(year: int, month: int, zone: ZoneInfo) -> tuple[int, int]:
    """The local calendar month ``[first 00:00, next first 00:00)`` as UTC epoch milliseconds."""
    next_year, next_month = divmod(year * 12 + month, 12)
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(next_year, next_month + 1, 1, tzinfo=zone)
    return _epoch_ms(start), _epoch_ms(end)


def _epoch_ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def generate_month(
    org: DemoOrg, seed: int, year: int, month: int, calls: int, zone: ZoneInfo
) -> MonthCalls:
    """Sample ``calls`` calls created in the local month ``year-month`` of ``zone``."""
    rng = np.random.default_rng([seed, year, month, 1])
    created = _created_ms(rng, calls, *month_bounds_ms(year, month, zone), zone)
    assistant = _assistant_codes(rng, org, seed, calls)
    teams = _team_index(org, assistant)
    call_type = _draw(rng, _type_mix(teams), calls)
    reason = _draw(rng, np.asarray(_REASON_MIX_BY_TYPE)[call_type], calls)
    duration, reason = _durations(rng, org, assistant, reason)
    status = _statuses(rng, calls)
    ended = status == STATUSES.index("ended")
    started_offset = rng.integers(300, 2_500, calls)
    started = np.where(status == STATUSES.index("queued"), NULL_MS, created + started_offset)
    ended_ms = np.where(ended, started + duration, NULL_MS)
    updated = np.where(
        ended, ended_ms + rng.integers(500, 4_000, calls), np.maximum(created, started)
    )
    columns: dict[str, npt.NDArray[np.integer]] = {
        **_ids(rng, calls),
        "created_ms": created,
        "started_ms": started,
        "ended_ms": ended_ms,
        "updated_ms": updated,
        "type_code": call_type.astype(np.int8),
        "status_code": status.astype(np.int8),
        "reason_code": np.where(ended, reason, NULL_CODE).astype(np.int8),
        "assistant_code": assistant.astype(np.int16),
        **_variable_codes(rng, calls),
    }
    columns.update(_costs(rng, org, assistant, call_type, reason, duration, ended))
    return MonthCalls(columns)


def generate(
    org: DemoOrg,
    seed: int,
    first_month: tuple[int, int],
    months: int,
    calls_per_month: int,
    timezone: str,
    progress: Progress | None = None,
) -> MonthCalls:
    """All months of the run, concatenated in creation order."""
    zone = ZoneInfo(timezone)
    parts = []
    for index, (year, month_index) in enumerate(month_sequence(*first_month, months)):
        month = month_index + 1
        parts.append(generate_month(org, seed, year, month, calls_per_month, zone))
        if progress:
            progress(
                f"sampled {year:04d}-{month:02d} ({index + 1}/{months}): {calls_per_month:,} calls"
            )
    return MonthCalls(
        {name: np.concatenate([part.columns[name] for part in parts]) for name in parts[0].columns}
    )


def _created_ms(
    rng: np.random.Generator, calls: int, start_ms: int, end_ms: int, zone: ZoneInfo
) -> Ints:
    """Creation instants with local weekday/hour seasonality, sorted ascending."""
    slot_starts = np.arange(start_ms, end_ms, 3_600_000, dtype=np.int64)
    slot_lengths = np.minimum(slot_starts + 3_600_000, end_ms) - slot_starts
    weights = np.empty(len(slot_starts))
    for index, slot in enumerate(slot_starts.tolist()):
        local = datetime.fromtimestamp(slot / 1000, tz=zone)
        weights[index] = WEEKDAY_WEIGHT[local.weekday()] * HOUR_WEIGHT[local.hour]
    weights *= slot_lengths / 3_600_000
    slots = rng.choice(len(slot_starts), size=calls, p=weights / weights.sum())
    offsets = (rng.random(calls) * slot_lengths[slots]).astype(np.int64)
    return np.sort(slot_starts[slots] + offsets)


def _assistant_codes(rng: np.random.Generator, org: DemoOrg, seed: int, calls: int) -> Ints:
    """Assistant index per call, or NO_ASSISTANT / ZERO_ASSISTANT; popularity is fixed per org."""
    popularity = np.random.default_rng([seed, 1]).lognormal(0.0, 0.6, len(org.assistants))
    chosen = rng.choice(len(org.assistants), size=calls, p=popularity / popularity.sum())
    draw = rng.random(calls)
    chosen = np.where(draw < SHARE_NO_ASSISTANT, NO_ASSISTANT, chosen)
    zero = (draw >= SHARE_NO_ASSISTANT) & (draw < SHARE_NO_ASSISTANT + SHARE_ZERO_ASSISTANT)
    return np.where(zero, ZERO_ASSISTANT, chosen).astype(np.int64)


def _team_index(org: DemoOrg, assistant: Ints) -> Ints:
    """Team index per call (into TEAMS), len(TEAMS) for calls of no or an unmapped assistant."""
    by_assistant = np.array(
        [TEAMS.index(a.team) if a.team else len(TEAMS) for a in org.assistants] + [len(TEAMS)] * 2
    )
    return by_assistant[assistant].astype(np.int64)


def _type_mix(teams: Ints) -> npt.NDArray[np.float64]:
    table = np.array([_TYPE_MIX_BY_TEAM[team] for team in TEAMS] + [_TYPE_MIX_UNMAPPED])
    return table[teams]


def _draw(rng: np.random.Generator, probabilities: npt.NDArray[np.float64], calls: int) -> Ints:
    """One categorical draw per row of ``probabilities`` (rows sum to 1), vectorised."""
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative[:, -1] = 1.0
    drawn: Ints = (rng.random(calls)[:, None] >= cumulative).sum(axis=1).astype(np.int64)
    return drawn


def _cost_center_index(org: DemoOrg, assistant: Ints) -> Ints:
    """Index into COST_CENTER_TEAMS per call, len(COST_CENTER_TEAMS) when none applies."""
    centers = list(COST_CENTER_TEAMS)
    by_assistant = np.array(
        [
            centers.index(a.cost_center_id) if a.cost_center_id else len(centers)
            for a in org.assistants
        ]
        + [len(centers)] * 2
    )
    return by_assistant[assistant].astype(np.int64)


def _durations(
    rng: np.random.Generator, org: DemoOrg, assistant: Ints, reason: Ints
) -> tuple[Ints, Ints]:
    """Log-normal durations in ms per reason; conversations over the limit become exceeded-max-duration."""
    medians = np.array(
        [_CONVERSATION_MEDIAN_BY_COST_CENTER[center] for center in COST_CENTER_TEAMS]
        + [_CONVERSATION_MEDIAN_UNMAPPED]
    )[_cost_center_index(org, assistant)]
    sigmas = np.full(len(reason), _CONVERSATION_SIGMA)
    for name, (median, sigma) in _REASON_DURATION.items():
        hit = reason == ENDED_REASONS.index(name)
        medians[hit] = median
        sigmas[hit] = sigma
    duration = (medians * np.exp(sigmas * rng.standard_normal(len(reason))) * 1000).astype(np.int64)
    conversation = np.isin(reason, [ENDED_REASONS.index(name) for name in _CONVERSATION])
    too_long = conversation & (duration > MAX_DURATION_MS)
    duration = np.where(too_long, MAX_DURATION_MS + rng.integers(0, 1_500, len(reason)), duration)
    reason = np.where(too_long, ENDED_REASONS.index("exceeded-max-duration"), reason)
    return np.maximum(duration, 250), reason


def _statuses(rng: np.random.Generator, calls: int) -> Ints:
    draw = rng.random(calls)
    status = np.full(calls, STATUSES.index("ended"), dtype=np.int64)
    status[draw < SHARE_IN_PROGRESS + SHARE_QUEUED] = STATUSES.index("in-progress")
    status[draw < SHARE_QUEUED] = STATUSES.index("queued")
    return status


def _ids(rng: np.random.Generator, calls: int) -> dict[str, npt.NDArray[np.integer]]:
    """Random version-4 UUIDs as two 64-bit halves (version nibble and variant bits set)."""
    high = rng.integers(0, 2**64, size=calls, dtype=np.uint64, endpoint=False)
    low = rng.integers(0, 2**64, size=calls, dtype=np.uint64, endpoint=False)
    high = (high & np.uint64(0xFFFF_FFFF_FFFF_0FFF)) | np.uint64(0x0000_0000_0000_4000)
    low = (low & np.uint64(0x3FFF_FFFF_FFFF_FFFF)) | np.uint64(0x8000_0000_0000_0000)
    return {"id_high": high, "id_low": low}


def _variable_codes(rng: np.random.Generator, calls: int) -> dict[str, npt.NDArray[np.integer]]:
    has_center = rng.random(calls) < SHARE_COST_CENTER_VARIABLE
    center = _draw(rng, np.tile(COST_CENTER_VARIABLE_MIX, (calls, 1)), calls)
    has_tier = rng.random(calls) < SHARE_CUSTOMER_TIER
    tier = _draw(rng, np.tile(CUSTOMER_TIER_MIX, (calls, 1)), calls)
    return {
        "cost_center_code": np.where(has_center, center, NULL_CODE).astype(np.int8),
        "tier_code": np.where(has_tier, tier, NULL_CODE).astype(np.int8),
    }


def _per_minute(duration_ms: Ints, micro_per_minute: int) -> Ints:
    """Micro-dollars for a per-minute rate, rounded half up in integers."""
    return (duration_ms * micro_per_minute + MS_PER_MINUTE // 2) // MS_PER_MINUTE


def _uniform(rng: np.random.Generator, low: int, high: int, calls: int) -> Ints:
    return rng.integers(low, high, calls).astype(np.int64)


def _costs(
    rng: np.random.Generator,
    org: DemoOrg,
    assistant: Ints,
    call_type: Ints,
    reason: Ints,
    duration: Ints,
    ended: npt.NDArray[np.bool_],
) -> dict[str, npt.NDArray[np.integer]]:
    """Cost components in micro-dollars; calls that have not ended carry no costs yet."""
    calls = len(reason)
    connected = ended & ~np.isin(reason, [ENDED_REASONS.index(name) for name in _NOT_CONNECTED])
    voicemail = reason == ENDED_REASONS.index("voicemail")
    phone = call_type != TYPES.index("webCall")
    outbound = call_type == TYPES.index("outboundPhoneCall")
    center = _cost_center_index(org, assistant)
    sales_or_marketing = np.isin(center, [0, 2])
    support = center == 1

    turns = np.where(
        voicemail, 1, np.maximum(1, (duration // 1000 + SECONDS_PER_TURN // 2) // SECONDS_PER_TURN)
    )
    turns = np.where(connected, turns, 0)
    prompt = turns * PROMPT_TOKENS_PER_TURN + turns * (turns - 1) // 2 * CONTEXT_GROWTH_TOKENS
    cached_share = rng.uniform(0.25, 0.65, calls)
    cached = np.where(turns > 1, (prompt * cached_share).astype(np.int64), 0)
    completion = turns * _uniform(rng, 20, 70, calls)
    characters = np.where(turns > 0, completion * 4 + _uniform(rng, 0, 40, calls), 0)
    llm = (
        (prompt - cached) * LLM_QUARTER_MICRO_PER_PROMPT_TOKEN
        + cached * LLM_QUARTER_MICRO_PER_CACHED_TOKEN
        + completion * LLM_QUARTER_MICRO_PER_COMPLETION_TOKEN
        + 2
    ) // 4

    evaluated = connected & ~voicemail & (duration > 10_000)
    success_rate = np.array([*_SUCCESS_RATE_BY_COST_CENTER.values(), _SUCCESS_RATE_UNMAPPED])
    success = rng.random(calls) < success_rate[center]
    zero = np.zeros(calls, dtype=np.int64)
    return {
        "has_cost": ended,
        "transport_micro": np.where(
            ended & phone, _per_minute(duration, TRANSPORT_MICRO_PER_MINUTE), 0
        ),
        "stt_micro": np.where(connected, _per_minute(duration, STT_MICRO_PER_MINUTE), 0),
        "llm_micro": llm,
        "tts_micro": characters * TTS_MICRO_PER_CHARACTER,
        "vapi_micro": np.where(ended, _per_minute(duration, VAPI_MICRO_PER_MINUTE), 0),
        "summary_micro": np.where(evaluated, _uniform(rng, 300, 1_600, calls), zero),
        "structured_data_micro": np.where(
            evaluated & sales_or_marketing, _uniform(rng, 400, 1_400, calls), zero
        ),
        "success_evaluation_micro": np.where(evaluated, _uniform(rng, 150, 700, calls), zero),
        "voicemail_detection_micro": np.where(
            ended & outbound & (rng.random(calls) < 0.85), _uniform(rng, 800, 2_500, calls), zero
        ),
        "knowledge_base_micro": np.where(
            connected & support & (rng.random(calls) < 0.45), _uniform(rng, 100, 900, calls), zero
        ),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cached_prompt_tokens": cached,
        "tts_characters": characters,
        "success_code": np.where(evaluated, success.astype(np.int64), NULL_CODE).astype(np.int8),
    }
