"""Bodies of the label and outcome endpoints (``/api/labels``, ``/api/outcomes``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from promptwatch.labels import LABEL_PATTERN

from .schemas import ConsumerOut

__all__ = [
    "ComparisonOut",
    "LabelCreate",
    "LabelList",
    "LabelOut",
    "OutcomesOut",
    "VersionOutcomeOut",
]


class LabelOut(BaseModel):
    label: str = Field(description="`production` is PROMPTS_PATH itself; another label is `prompts.<label>.json`")
    document: str = Field(description="The name other stores (Redis) key this label's document by")
    file: str = Field(description="The file's name in the prompts directory")
    sha256: str
    size: int
    mtime: float
    valid: bool
    error: str | None = Field(description="Why the file on disk is not valid prompts (a broken hand edit)")
    consumers: list[ConsumerOut] = Field(description="Every live process running this label")
    in_sync: int
    out_of_sync: int


class LabelList(BaseModel):
    items: list[LabelOut]


class LabelCreate(BaseModel):
    """A new label, starting as a copy of another one."""

    model_config = ConfigDict(
        populate_by_name=True, json_schema_extra={"examples": [{"label": "staging", "from": "production"}]}
    )

    label: str = Field(pattern=f"^{LABEL_PATTERN}$", description="The new label's name")
    from_label: str = Field(
        default="production", alias="from", pattern=f"^{LABEL_PATTERN}$", description="The label to copy"
    )


class ComparisonOut(BaseModel):
    reason: str = Field(description="`goodbye` or `operator` (a transfer)")
    difference: float = Field(description="This version's share minus the baseline's (-1..1)")
    low: float = Field(description="The 95 % interval of the difference (two-proportion, Wald)")
    high: float
    too_small: bool = Field(description="Too few calls or events for the interval to tell anything")
    significant: bool = Field(description="The interval excludes 0 and the sample is large enough")


class VersionOutcomeOut(BaseModel):
    label: str
    sha256: str
    calls: int
    median_turns: float | None
    end_reasons: dict[str, int] = Field(description="Calls by end reason (goodbye, operator, no_input, error, …)")
    shares: dict[str, float] = Field(description="The same as shares of the calls (0..1)")
    backend_errors: int = Field(description="Turns with a backend (STT, LLM, TTS) error")
    calls_with_errors: int
    median_reply_ms: float | None = Field(description="Median STT + LLM + TTS time of the turns the bot answered")
    replies: int = Field(description="The answered turns the latency is the median of")
    baseline: bool = Field(description="The version the others are compared with")
    comparisons: list[ComparisonOut]


class OutcomesOut(BaseModel):
    since: float
    until: float
    baseline: VersionOutcomeOut | None = Field(description="The baseline version, None when it had no calls")
    items: list[VersionOutcomeOut]
    min_calls: int = Field(description="Below this many calls per version an interval is flagged too_small")
    min_events: int = Field(description="Fewer calls with (or without) the outcome also make it too_small")
