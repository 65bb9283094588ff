"""``GET /call`` of the emulator, and the drift that makes its analytics disagree with it on purpose.

``GET /call`` lists the loaded calls like Vapi: a plain JSON array of ``Call`` objects,
newest ``createdAt`` first (ties by id, descending), at most ``limit`` (default 100, at
most 1000), filtered by ``createdAt``/``updatedAt`` ``Gt/Ge/Lt/Le``, ``id``,
``assistantId`` and ``phoneNumberId``; no cursor. Parameters are checked like
``GET /assistant`` (``assistants.parse_list_query``): every problem one message of a 400.
A call is rendered from the fields the emulator loads (``fields.CALL_FIELDS``), so an
absent field is ``null`` and fields the emulator does not read are not echoed. ``costs[]``
is rendered from ``costBreakdown``, one item per non-zero part exactly as ``generate``
writes it: a record's own ``costs`` is not loaded, since 1.5M calls' arrays as JSON
tripled the emulator's memory (1.2 → 3.8 GiB peak). The query is SQL, below, over the
sorted table (its zone maps make a time window a short scan).

The drift (``serve --drift-drop PCT --drift-recost PCT --drift-seed N``) exists for tests
of the verification: from the analytics answers only, it drops a share of the calls and
re-costs another (``cost`` and ``costBreakdown.llm`` raised by a quarter of the cost), both
chosen by ``md5(seed, id)`` so the same seed picks the same calls. ``GET /call`` still
serves every call as loaded; ``GET /_drift`` names the calls changed, so a test can assert
that the drift report finds exactly those.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response

from vapi_emulator.assistants import parse_list_query
from vapi_emulator.engine import MONEY_TYPE, Engine
from vapi_emulator.resolve import QueryProblems
from vapi_emulator.store import StoreOptions

ID_FILTERS = {"id": "id", "assistantId": "assistant_id", "phoneNumberId": "phone_number_id"}
"""Exact-match filters of ``GET /call`` → the column each compares."""
_BOUNDS = {"Gt": ">", "Ge": ">=", "Lt": "<", "Le": "<="}
_TIME_COLUMNS = {"createdAt": "created_us", "updatedAt": "updated_us"}
RECOST_SHARE = "0.25"
"""A re-costed call's cost (and llm component) rises by this share of its cost."""

_MONEY = "json(rtrim(rtrim(CAST({0} AS VARCHAR), '0'), '.'))"
"""Money as its exact decimal without trailing zeros (a DECIMAL's text always has a point)."""
_INSTANT = "strftime(make_timestamp({0}), '%Y-%m-%dT%H:%M:%S.%gZ')"


def _item(column: str, fields: str) -> str:
    return (
        f"CASE WHEN {column} > 0 THEN json_merge_patch(json_object({fields}), "
        f"json_object('cost', {_MONEY.format(column)})) END"
    )


_ANALYSIS = (
    "'type', 'analysis', 'analysisType', '{0}', 'model', json_object('provider', 'openai'), "
    "'promptTokens', 0, 'completionTokens', 0"
)
_MINUTES = "round((ended_us - started_us) / 60000000, 4)"
_COSTS = f"""to_json(list_filter([
    {_item("transport", f"'type', 'transport', 'provider', 'twilio', 'minutes', {_MINUTES}")},
    {_item("stt", f"'type', 'transcriber', 'transcriber', json_object('provider', 'deepgram'), 'minutes', {_MINUTES}")},
    {_item("llm", "'type', 'model', 'model', json_object('provider', 'openai', 'model', 'gpt-4o'), 'promptTokens', llm_prompt_tokens, 'completionTokens', llm_completion_tokens")},
    {_item("tts", "'type', 'voice', 'voice', json_object('provider', '11labs'), 'characters', tts_characters")},
    {_item("vapi", f"'type', 'vapi', 'subType', 'normal', 'minutes', {_MINUTES}")},
    {_item("voicemail_detection_cost", "'type', 'voicemail-detection', 'model', json_object('provider', 'openai'), 'provider', 'openai', 'promptTextTokens', 0, 'promptAudioTokens', 0, 'completionTextTokens', 0, 'completionAudioTokens', 0")},
    {_item("analysis_summary", _ANALYSIS.format("summary"))},
    {_item("analysis_structured_data", _ANALYSIS.format("structuredData"))},
    {_item("analysis_success_evaluation", _ANALYSIS.format("successEvaluation"))},
    {_item("knowledge_base_cost", "'type', 'knowledge-base', 'model', json_object('provider', 'openai'), 'promptTokens', 0, 'completionTokens', 0")}
], lambda item: item IS NOT NULL))"""
"""``costs[]`` from the loaded ``costBreakdown``, item for item as ``generate`` writes it."""

_CALL_JSON = f"""
json_object(
    'id', id,
    'orgId', org_id,
    'type', type,
    'status', status,
    'endedReason', ended_reason,
    'assistantId', assistant_id,
    'phoneNumberId', phone_number_id,
    'assistantOverrides', CASE WHEN variable_json IS NOT NULL
        THEN json_object('variableValues', variable_json) END,
    'createdAt', {_INSTANT.format("created_us")},
    'updatedAt', {_INSTANT.format("updated_us")},
    'startedAt', {_INSTANT.format("started_us")},
    'endedAt', {_INSTANT.format("ended_us")},
    'cost', {_MONEY.format("cost")},
    'costBreakdown', CASE WHEN coalesce(transport, stt, llm, tts, vapi, total) IS NOT NULL
        THEN json_object(
            'transport', {_MONEY.format("transport")},
            'stt', {_MONEY.format("stt")},
            'llm', {_MONEY.format("llm")},
            'tts', {_MONEY.format("tts")},
            'vapi', {_MONEY.format("vapi")},
            'total', {_MONEY.format("total")},
            'llmPromptTokens', llm_prompt_tokens,
            'llmCompletionTokens', llm_completion_tokens,
            'llmCachedPromptTokens', llm_cached_prompt_tokens,
            'ttsCharacters', tts_characters,
            'analysisCostBreakdown', json_object(
                'summary', {_MONEY.format("analysis_summary")},
                'structuredData', {_MONEY.format("analysis_structured_data")},
                'successEvaluation', {_MONEY.format("analysis_success_evaluation")}),
            'voicemailDetectionCost', {_MONEY.format("voicemail_detection_cost")},
            'knowledgeBaseCost', {_MONEY.format("knowledge_base_cost")}) END,
    'analysis', CASE WHEN success_evaluation IS NOT NULL
        THEN json_object('successEvaluation', success_evaluation) END,
    'costs', CASE WHEN cost IS NOT NULL THEN {_COSTS} END
)"""

_LIST_CALLS = """
WITH chosen AS (
    SELECT *
    FROM store.calls
    INNER JOIN store.call_details USING (created_us, id)
    WHERE {where}
    ORDER BY created_us DESC, id DESC
    LIMIT $limit
)

SELECT '[' || coalesce(string_agg({call_json}, ',' ORDER BY created_us DESC, id DESC), '') || ']'
FROM chosen
"""

_DRIFT = f"""
CREATE OR REPLACE TABLE drift AS
WITH ranked AS (
    SELECT
        id,
        assistant_id,
        created_us,
        cost,
        row_number() OVER (ORDER BY md5($seed || ':drop:' || id)) AS drop_rank
    FROM store.calls
),

costed AS (
    SELECT *, row_number() OVER (ORDER BY md5($seed || ':recost:' || id)) AS recost_rank
    FROM ranked
    WHERE drop_rank > $drops AND coalesce(cost, 0) > 0
),

dropped AS (
    SELECT id, assistant_id, created_us, 'drop' AS kind, CAST(NULL AS {MONEY_TYPE}) AS delta
    FROM ranked
    WHERE drop_rank <= $drops
),

recosted AS (
    SELECT
        id,
        assistant_id,
        created_us,
        'recost' AS kind,
        CAST(round(cost * CAST($share AS DECIMAL(4, 2)), 6) AS {MONEY_TYPE}) AS delta
    FROM costed
    WHERE recost_rank <= $recosts
)

SELECT * FROM dropped
UNION ALL
SELECT * FROM recosted
"""

_DRIFTED_VIEW = f"""
CREATE OR REPLACE VIEW calls AS
SELECT
    c.* REPLACE (
        CAST(c.cost + coalesce(d.delta, 0) AS {MONEY_TYPE}) AS cost,
        CASE WHEN d.kind = 'recost' THEN CAST(coalesce(c.llm, 0) + d.delta AS {MONEY_TYPE})
            ELSE c.llm END AS llm
    )
FROM store.calls AS c
LEFT JOIN drift AS d ON d.id = c.id
WHERE d.kind IS DISTINCT FROM 'drop'
"""

_DRIFT_LISTING = f"""
SELECT to_json(list(json_object(
    'id', id,
    'kind', kind,
    'assistantId', assistant_id,
    'createdAt', {_INSTANT.format("created_us")},
    'costDelta', {_MONEY.format("delta")}
) ORDER BY created_us, id))
FROM drift
"""


@dataclass(frozen=True)
class DriftPlan:
    """Percentages of the loaded calls to drop from, and to re-cost in, the analytics answers."""

    drop_percent: float = 0.0
    recost_percent: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value in (("drop", self.drop_percent), ("recost", self.recost_percent)):
            if not 0 <= value <= 100:
                raise ValueError(f"--drift-{name} {value} must be a percentage from 0 to 100")
        if self.drop_percent + self.recost_percent > 100:
            raise ValueError("--drift-drop and --drift-recost together exceed 100 %")

    @property
    def active(self) -> bool:
        return self.drop_percent > 0 or self.recost_percent > 0


class DriftedEngine(Engine):
    """An engine whose analytics miss or mis-cost the calls its ``GET /call`` still serves."""

    def __init__(
        self, paths: Sequence[Path], plan: DriftPlan, store: StoreOptions | None = None
    ) -> None:
        super().__init__(paths, store)
        self.plan = plan
        self._drift_applied = False

    def load(self) -> int:
        count = super().load()
        with self._lock:
            if not self._drift_applied:
                cursor = self.cursor()
                try:
                    cursor.execute(
                        _DRIFT,
                        {
                            "seed": str(self.plan.seed),
                            "drops": round(count * self.plan.drop_percent / 100),
                            "recosts": round(count * self.plan.recost_percent / 100),
                            "share": RECOST_SHARE,
                        },
                    )
                    cursor.execute(_DRIFTED_VIEW)
                finally:
                    cursor.close()
                self._drift_applied = True
        return count

    def drift_json(self) -> str:
        """The changed calls as a JSON array, in creation order."""
        cursor = self.cursor()
        try:
            row = cursor.execute(_DRIFT_LISTING).fetchone()
        finally:
            cursor.close()
        return str(row[0]) if row and row[0] is not None else "[]"


def list_calls_json(engine: Engine, items: Iterable[tuple[str, str]]) -> str:
    """The body of ``GET /call`` for these query parameters; ``QueryProblems`` for a 400."""
    items = list(items)
    filters: dict[str, str] = {}
    problems: list[str] = []
    for name, value in items:
        if name in ID_FILTERS:
            if name in filters:
                problems.append(f"{name} must be given once")
            elif not value.strip():
                problems.append(f"{name} should not be empty")
            filters[name] = value
    try:
        query = parse_list_query((name, value) for name, value in items if name not in ID_FILTERS)
    except QueryProblems as error:
        problems = error.messages + problems
    if problems:
        raise QueryProblems(problems)
    conditions = ["TRUE"]
    parameters: dict[str, Any] = {"limit": query.limit}
    for index, (name, bound_ms) in enumerate(query.bounds):
        column = _TIME_COLUMNS[name[:-2]]
        conditions.append(f"{column} {_BOUNDS[name[-2:]]} $t{index}")
        parameters[f"t{index}"] = bound_ms * 1000
    for name, value in filters.items():
        conditions.append(f"{ID_FILTERS[name]} = $f_{name}")
        parameters[f"f_{name}"] = value
    sql = _LIST_CALLS.format(where=" AND ".join(conditions), call_json=_CALL_JSON)
    cursor = engine.cursor()
    try:
        row = cursor.execute(sql, parameters).fetchone()
    finally:
        cursor.close()
    return str(row[0]) if row else "[]"


def add_call_routes(app: FastAPI, engine: Engine, require_key: Callable[..., Any]) -> None:
    """``GET /call`` and ``GET /_drift`` on ``app``, behind the app's bearer-key guard."""
    errors: dict[str, Any] = {"content": {"application/json": {}}}

    @app.get(
        "/call",
        operation_id="CallController_findAll",
        summary="List Calls",
        tags=["Calls"],
        dependencies=[Depends(require_key)],
        responses={
            200: {"description": "The calls, newest first (a JSON array)"},
            400: {"description": "Invalid parameters", **errors},
            401: {"description": "Missing or wrong bearer key", **errors},
        },
        response_class=Response,
    )
    def list_calls(request: Request) -> Response:
        body = list_calls_json(engine, request.query_params.multi_items())
        return Response(body, media_type="application/json")

    @app.get(
        "/_drift",
        tags=["Emulator"],
        summary="The calls the drift flags changed in the analytics answers",
        dependencies=[Depends(require_key)],
        response_class=Response,
    )
    def drift() -> Response:
        plan = engine.plan if isinstance(engine, DriftedEngine) else DriftPlan()
        calls = engine.drift_json() if isinstance(engine, DriftedEngine) else "[]"
        body = (
            f'{{"dropPercent":{plan.drop_percent},"recostPercent":{plan.recost_percent},'
            f'"seed":{plan.seed},"recostShare":{RECOST_SHARE},"calls":{calls}}}'
        )
        return Response(body, media_type="application/json")
