"""Request and response bodies of the API (what the OpenAPI schema documents)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, WithJsonSchema

from ..consumers import ConsumerView
from ..history import Revision
from .problems import ErrorItem, Problem

__all__ = [
    "CallDetailOut",
    "CallList",
    "CallOut",
    "ConsumerOut",
    "DiffOut",
    "ErrorItem",
    "HistoryList",
    "KbFileOut",
    "KbList",
    "KeyChangeOut",
    "PanelOut",
    "PATCH_ADAPTER",
    "PatchBody",
    "PatchRemove",
    "PatchSet",
    "PlaygroundIn",
    "PlaygroundOut",
    "Problem",
    "RevisionOut",
    "SaveOut",
    "StatusOut",
    "TurnOut",
]


class RevisionOut(BaseModel):
    id: int
    sha256: str
    created_at: float
    author: str
    origin: str
    message: str
    size: int
    host: str = Field(default="", description="PROMPTS_HOST of the host where the edit was made")

    @classmethod
    def of(cls, rev: Revision) -> RevisionOut:
        return cls(**rev.__dict__)


class ConsumerOut(BaseModel):
    service: str
    pid: int
    hostname: str
    sha256: str | None
    loaded_at: float | None
    source: str | None
    mode: str
    last_error: str | None
    in_sync: bool
    latency_ms: float | None = Field(description="From the save to this consumer loading it (when in sync)")
    started_at: float | None = Field(default=None, description="When the process started (uptime)")
    updated_at: float | None = Field(default=None, description="When it last published its status (last seen)")
    version: str = Field(default="", description="The software version it runs")
    host: str = Field(default="", description="PROMPTS_HOST of the consumer's host")

    @classmethod
    def of(cls, view: ConsumerView) -> ConsumerOut:
        return cls(**view.__dict__)


class SaveOut(BaseModel):
    sha256: str
    size: int
    previous_sha256: str | None
    revision: RevisionOut | None = Field(description="None when the content was already the newest revision")
    consumers: list[ConsumerOut]
    all_applied: bool = Field(description="Every live consumer runs the new sha256")
    waited_ms: float
    warnings: list[str] = Field(
        default_factory=list,
        description="Saved and live, but something after the write failed (the history could not record it)",
    )


class PatchSet(BaseModel):
    """The new value of one prompt (a list of texts for ``fillers``)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"value": "Добрый день! Метротех слушает."}]}
    )

    value: str | list[str]
    remove: Literal[False] = False
    message: str = Field(default="", max_length=500)


class PatchRemove(BaseModel):
    """``remove: true`` deletes the prompt."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"remove": True}]})

    remove: Literal[True]
    message: str = Field(default="", max_length=500)


PatchBody = Annotated[PatchSet | PatchRemove, Field(description="`value`, or `remove: true`")]
PATCH_ADAPTER: TypeAdapter[PatchSet | PatchRemove] = TypeAdapter(PatchBody)


class PanelOut(BaseModel):
    """The panel process itself."""

    hostname: str
    version: str
    started_at: float
    now: float = Field(description="The panel's clock, to compute uptimes and ages against")


class ConflictOut(BaseModel):
    """A local edit that lost to a newer version from another host; its content is kept on that host."""

    name: str = Field(description="The document: prompts, prompts.<label> or kb/<file>")
    sha256: str
    host: str = Field(description="Where the losing edit was made")
    base_version: int
    winner_version: int
    winner_sha256: str
    winner_host: str
    at: float
    kept: str = Field(description="The file on that host keeping the losing edit")


class AgentOut(BaseModel):
    """A host's sync agent (``promptwatch sync``)."""

    model_config = ConfigDict(extra="ignore")

    pid: int
    connected: bool = Field(description="Connected to Redis")
    distributing: bool = Field(description="Connected, and every document agreed with Redis")
    redis: str = Field(description="The Redis URL, without password")
    versions: dict[str, int]
    last_error: str | None
    errors: dict[str, str] = Field(description="Per document: why a version was refused or not published")
    conflicts: list[ConflictOut]
    started_at: float
    updated_at: float


class HostOut(BaseModel):
    host: str
    connected: bool = Field(description="False: the agent is down, its record expired, or it cannot reach Redis")
    agent: AgentOut | None
    consumers: list[ConsumerOut]


class StatusOut(BaseModel):
    path: str
    sha256: str | None = Field(description="The sha256 of the file on disk; None when it is missing")
    size: int | None
    valid: bool
    error: str | None
    watching: str = Field(description="How the panel itself watches the file: inotify, poll or off")
    consumers: list[ConsumerOut]
    in_sync: int
    out_of_sync: int
    missing: list[str] = Field(
        default_factory=list, description="Expected services (ADMIN_EXPECTED_CONSUMERS) that no live process runs"
    )
    all_in_sync: bool = Field(
        default=False, description="Every live consumer runs the file on disk and no expected service is missing"
    )
    panel: PanelOut | None = None
    host: str = Field(default="", description="This panel's host (PROMPTS_HOST)")
    distributing: bool | None = Field(
        default=None, description="With PROMPTS_REDIS_URL: saves here reach the other hosts; None without Redis"
    )
    not_distributing_reason: str | None = None
    hosts: list[HostOut] = Field(default_factory=list, description="Every host, its agent and its consumers")
    conflicts: list[ConflictOut] = Field(default_factory=list, description="Recent conflicts on every host")


class HistoryList(BaseModel):
    items: list[RevisionOut]
    total: int
    retention: int


class KeyChangeOut(BaseModel):
    key: str
    kind: Literal["added", "removed", "changed"]
    before: Any = None
    after: Any = None


class DiffOut(BaseModel):
    from_sha256: str
    to_sha256: str
    changes: list[KeyChangeOut]
    unified: str


class KbFileOut(BaseModel):
    name: str
    size: int
    mtime: float
    sha256: str


class KbList(BaseModel):
    files: list[KbFileOut]
    max_bytes: int


class TurnOut(BaseModel):
    idx: int
    started_at: float
    caller_text: str
    bot_text: str
    stt_ms: float | None
    llm_ms: float | None
    tts_ms: float | None
    error: str | None


class CallOut(BaseModel):
    id: str
    caller_number: str
    caller_name: str
    started_at: float
    answered_at: float | None
    ended_at: float | None
    end_reason: str | None
    prompts_sha256: str
    label: str = Field(description="The prompts label the call ran on (`production` unless the dialplan chose one)")
    turn_count: int
    duration: float | None
    had_error: bool = Field(description="Ended with an error, or a turn recorded one")
    console: bool = Field(description="A call made in `stasis console` (a terminal, no Asterisk), not by a caller")


class CallDetailOut(CallOut):
    turns: list[TurnOut]


class CallList(BaseModel):
    items: list[CallOut]
    total: int
    limit: int
    offset: int


class MessageIn(BaseModel):
    """One earlier utterance: ``user`` is the caller, ``assistant`` the bot."""

    role: Literal["user", "assistant"]
    text: str = Field(max_length=4000)


class PlaygroundIn(BaseModel):
    """A caller's phrase, answered with the *draft* prompts (not saved)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "prompts": {"system_prompt": "Ты — голосовой ассистент.", "greeting": "Здравствуйте!"},
                    "text": "Сколько стоит доставка?",
                }
            ]
        }
    )

    prompts: Annotated[
        dict[str, Any],
        WithJsonSchema(
            {
                "allOf": [{"$ref": "#/components/schemas/Prompts"}],
                "description": "The draft prompts document (validated like a save: 422 with the path of each error)",
            }
        ),
    ]
    text: str = Field(min_length=1, max_length=4000)
    history: list[MessageIn] = Field(default_factory=list, max_length=50)


class PassageOut(BaseModel):
    doc: str
    text: str
    score: float


class PlaygroundOut(BaseModel):
    text: str
    source: str = Field(description="llm, kb or fallback")
    passages: list[PassageOut]
    llm_ms: float
    error: str | None
    backend: str = Field(description="offline (answers from the knowledge base) or the configured LLM")
