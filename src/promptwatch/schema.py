"""The prompts document: parse with orjson, validate with pydantic, identify by sha256."""

from __future__ import annotations

import hashlib
from typing import Annotated

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from .errors import DocumentSchemaError, DocumentSyntaxError, DocumentTooLargeError, FieldError

__all__ = ["MAX_DOCUMENT_BYTES", "Prompts", "format_loc", "parse_document", "sha256_hex"]

MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_FILLER_CHARS = 200


def sha256_hex(data: bytes) -> str:
    """The identity of a document: the sha256 of its exact bytes (version and ETag everywhere)."""
    return hashlib.sha256(data).hexdigest()


Filler = Annotated[str, StringConstraints(min_length=1, max_length=MAX_FILLER_CHARS, pattern=r"\S")]


class Prompts(BaseModel):
    """The validated prompts.  Extra keys are operators' own named prompts and must be strings."""

    model_config = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=False)

    system_prompt: str = Field(min_length=1, json_schema_extra={"pattern": r"\S"})  # not blank (_not_blank)
    greeting: str = Field(min_length=1, json_schema_extra={"pattern": r"\S"})
    fillers: tuple[Filler, ...] = ()
    fallback: str | None = None
    goodbye: str | None = None
    __pydantic_extra__: dict[str, str] = Field(init=False)

    @field_validator("system_prompt", "greeting")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @property
    def custom(self) -> dict[str, str]:
        """The operator's own named prompts (every key beyond the known ones)."""
        return dict(self.__pydantic_extra__ or {})

    def get(self, key: str, default: str | None = None) -> str | None:
        """A prompt by name, known or custom; ``default`` when absent."""
        if key in type(self).model_fields:
            value = getattr(self, key)
            return value if isinstance(value, str) else default
        return self.custom.get(key, default)


def format_loc(loc: tuple[int | str, ...]) -> str:
    """``("fillers", 2)`` → ``fillers[2]``; an empty location is the document root ``$``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "$"


def _line_col(data: bytes, pos: int) -> tuple[int, int]:
    before = data[:pos]
    line = before.count(b"\n") + 1
    col = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
    return line, col


def _syntax_error(data: bytes, source: str, strict: orjson.JSONDecodeError) -> DocumentSyntaxError:
    """Describe a JSON syntax error.  The stdlib parser's messages read better than orjson's; where
    only orjson rejects the document (NaN, Infinity, lone surrogates), use orjson's own position."""
    import json

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line, col = _line_col(data, e.start)
        return DocumentSyntaxError(f"invalid UTF-8 (byte 0x{data[e.start]:02x})", source=source, line=line, col=col)
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        return DocumentSyntaxError(e.msg, source=source, line=e.lineno, col=e.colno)
    except RecursionError:
        return DocumentSyntaxError("nested too deeply", source=source, line=1, col=1)
    return DocumentSyntaxError(strict.msg, source=source, line=strict.lineno, col=strict.colno)


def parse_document(
    data: bytes, *, source: str = "<document>", limit: int = MAX_DOCUMENT_BYTES, size: int | None = None
) -> Prompts:
    """Parse and validate a prompts document, or raise a :class:`DocumentError` naming the place.

    ``size`` is the file's size when ``data`` is only its first ``limit + 1`` bytes (a bounded read).
    """
    if len(data) > limit:
        raise DocumentTooLargeError(max(len(data), size or 0), limit, source=source)
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise _syntax_error(data, source, e) from None
    if not isinstance(raw, dict):
        raise DocumentSchemaError(
            [FieldError("$", f"must be a JSON object, not {type(raw).__name__}", "not_object")], source=source
        )
    try:
        return Prompts.model_validate(raw)
    except ValidationError as e:
        errors: list[FieldError] = []
        for err in e.errors(include_url=False):
            msg, kind = err["msg"].removeprefix("Value error, "), err["type"]
            if kind == "string_pattern_mismatch" or msg == "must not be blank":
                msg, kind = "must not be blank", "blank"
            errors.append(FieldError(format_loc(tuple(err["loc"])), msg, kind))
        raise DocumentSchemaError(errors, source=source) from None
