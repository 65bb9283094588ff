"""The Vapi ``Call`` fields the emulator reads, and how each is typed.

Everything else in a record is ignored, so exports from newer API versions load
unchanged. The same list drives the JSON reader (``records.py``) and the SQL that types
and checks values (``engine.py``), so a field is added in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["text", "object", "array", "instant", "money", "integer"]


@dataclass(frozen=True)
class CallField:
    """One field: its column in the ``calls`` table, its path in a Call, its kind."""

    column: str
    path: tuple[str, ...]
    kind: Kind
    required: bool = False

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


CALL_FIELDS: tuple[CallField, ...] = (
    CallField("id", ("id",), "text", required=True),
    CallField("type", ("type",), "text"),
    CallField("status", ("status",), "text"),
    CallField("ended_reason", ("endedReason",), "text"),
    CallField("assistant_id", ("assistantId",), "text"),
    CallField("variable_values", ("assistantOverrides", "variableValues"), "object"),
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
    # Read for GET /call only (``calls.py``): the analytics columns above never change with them.
    CallField("org_id", ("orgId",), "text"),
    CallField("phone_number_id", ("phoneNumberId",), "text"),
    CallField("updated_at", ("updatedAt",), "instant"),
    CallField("total", ("costBreakdown", "total"), "money"),
    CallField(
        "analysis_structured_data",
        ("costBreakdown", "analysisCostBreakdown", "structuredData"),
        "money",
    ),
    CallField(
        "analysis_success_evaluation",
        ("costBreakdown", "analysisCostBreakdown", "successEvaluation"),
        "money",
    ),
    CallField("voicemail_detection_cost", ("costBreakdown", "voicemailDetectionCost"), "money"),
    CallField("knowledge_base_cost", ("costBreakdown", "knowledgeBaseCost"), "money"),
    CallField("costs", ("costs",), "array"),
)
