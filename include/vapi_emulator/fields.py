"""The Vapi ``Call`` fields the emulator reads, and how each is typed.

Everything else in a record is ignored, so exports from newer API versions load
unchanged. The same list drives the JSON reader (``records.py``) and the SQL that types
and checks values (``engine.py``), so a field is added in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["text", "object", "variables", "instant", "money", "integer"]
"""``variables``: an object whose values are stored as their group-key text (``records``)."""


@dataclass(frozen=True)
class CallField:
    """One field: its column in the ``calls`` table, its path in a Call, its kind."""

    column: str
    path: tuple[str, ...]
    kind: Kind
    required: bool = False
    served_only: bool = False
    """Read for ``GET /call`` only: kept in ``call_details``, out of the analytics table."""

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


CALL_FIELDS: tuple[CallField, ...] = (
    CallField("id", ("id",), "text", required=True),
    CallField("type", ("type",), "text"),
    CallField("status", ("status",), "text"),
    CallField("ended_reason", ("endedReason",), "text"),
    CallField("assistant_id", ("assistantId",), "text"),
    CallField("variable_values", ("assistantOverrides", "variableValues"), "variables"),
    CallField("success_evaluation", ("analysis", "successEvaluation"), "text"),
    CallField("created_at", ("createdAt",), "instant", required=True),
    CallField("started_at", ("startedAt",), "instant"),
    CallField("ended_at", ("endedAt",), "instant"),
    CallField("cost", ("cost",), "money"),
    CallField("transport", ("costBreakdown", "transport"), "money"),
    CallField("stt", ("costBreakdown", "stt"), "money"),
    CallField("llm", ("costBreakdown", "llm"), "money"),
    CallField("tts", ("costBreakdown", "tts"), "money"),
    CallField("vapi", ("costBreakdown", "vapi"), "money"),
    CallField("analysis_summary", ("costBreakdown", "analysisCostBreakdown", "summary"), "money"),
    CallField("llm_prompt_tokens", ("costBreakdown", "llmPromptTokens"), "integer"),
    CallField("llm_completion_tokens", ("costBreakdown", "llmCompletionTokens"), "integer"),
    CallField("llm_cached_prompt_tokens", ("costBreakdown", "llmCachedPromptTokens"), "integer"),
    CallField("tts_characters", ("costBreakdown", "ttsCharacters"), "integer"),
    # Read for GET /call only (``calls.py``), in a table of their own: sorting them with the
    # analytics columns would raise the emulator's peak memory by a third.
    CallField("org_id", ("orgId",), "text", served_only=True),
    CallField(
        "variable_json", ("assistantOverrides", "variableValues"), "object", served_only=True
    ),
    CallField("phone_number_id", ("phoneNumberId",), "text", served_only=True),
    CallField("updated_at", ("updatedAt",), "instant", served_only=True),
    CallField("total", ("costBreakdown", "total"), "money", served_only=True),
    CallField(
        "analysis_structured_data",
        ("costBreakdown", "analysisCostBreakdown", "structuredData"),
        "money",
        served_only=True,
    ),
    CallField(
        "analysis_success_evaluation",
        ("costBreakdown", "analysisCostBreakdown", "successEvaluation"),
        "money",
        served_only=True,
    ),
    CallField(
        "voicemail_detection_cost",
        ("costBreakdown", "voicemailDetectionCost"),
        "money",
        served_only=True,
    ),
    CallField(
        "knowledge_base_cost", ("costBreakdown", "knowledgeBaseCost"), "money", served_only=True
    ),
)
