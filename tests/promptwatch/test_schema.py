"""The prompts document: orjson + pydantic, errors that name the place, identity by sha256."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptwatch import (
    MAX_DOCUMENT_BYTES,
    DocumentError,
    DocumentSchemaError,
    DocumentSyntaxError,
    DocumentTooLargeError,
    Prompts,
    parse_document,
    sha256_hex,
)
from promptwatch.schema import format_loc

from .helpers import REPO


def doc(**fields: object) -> bytes:
    base: dict[str, object] = {"system_prompt": "Ты — ассистент.", "greeting": "Здравствуйте!"}
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


def test_the_sample_config_is_valid() -> None:
    prompts = parse_document((REPO / "config" / "prompts.json").read_bytes())
    assert prompts.greeting.startswith("Здравствуйте!")
    assert len(prompts.fillers) == 3
    assert prompts.custom == {"operator": prompts.get("operator")}


def test_minimal_document() -> None:
    prompts = parse_document(doc())
    assert prompts.fillers == ()
    assert prompts.fallback is None and prompts.goodbye is None
    assert prompts.custom == {}


def test_custom_prompts_and_get() -> None:
    prompts = parse_document(doc(operator="Соединяю.", goodbye="До свидания."))
    assert prompts.custom == {"operator": "Соединяю."}
    assert prompts.get("operator") == "Соединяю."
    assert prompts.get("goodbye") == "До свидания."
    assert prompts.get("fallback", "default") == "default"
    assert prompts.get("fillers", "no") == "no"  # not a string prompt
    assert prompts.get("absent") is None


def test_prompts_are_frozen() -> None:
    prompts = parse_document(doc())
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance ValidationError
        prompts.greeting = "x"  # type: ignore[misc]
    assert isinstance(prompts, Prompts)


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"system_prompt": ...}, "system_prompt"),
        ({"greeting": ...}, "greeting"),
        ({"greeting": ""}, "greeting"),
        ({"greeting": " \n "}, "greeting"),
        ({"greeting": 42}, "greeting"),
        ({"fillers": ["ok", ""]}, "fillers[1]"),
        ({"fillers": ["ok", "  "]}, "fillers[1]"),
        ({"fillers": ["x" * 201]}, "fillers[0]"),
        ({"fillers": "Секундочку"}, "fillers"),
        ({"fallback": 1}, "fallback"),
        ({"operator": ["not", "a", "string"]}, "operator"),
    ],
)
def test_schema_errors_name_the_field(fields: dict[str, object], path: str) -> None:
    with pytest.raises(DocumentSchemaError) as exc:
        parse_document(doc(**fields), source="prompts.json")
    assert path in [e.loc for e in exc.value.errors]
    assert str(exc.value).startswith("prompts.json: ")
    assert f"{path}: " in str(exc.value)


def test_every_schema_error_is_reported() -> None:
    with pytest.raises(DocumentSchemaError) as exc:
        parse_document(orjson.dumps({"fillers": [""]}))
    assert {e.loc for e in exc.value.errors} == {"system_prompt", "greeting", "fillers[0]"}


@pytest.mark.parametrize("root", [b"[]", b'"text"', b"null", b"42"])
def test_the_root_must_be_an_object(root: bytes) -> None:
    with pytest.raises(DocumentSchemaError) as exc:
        parse_document(root)
    assert exc.value.errors[0].loc == "$"


@pytest.mark.parametrize(
    ("data", "line", "col"),
    [
        (b'{\n  "system_prompt": "x",\n  "greeting": "y"\n  "fillers": []\n}', 4, 3),
        (b'{"system_prompt": "x",}', 1, 23),
        ('{\n "greeting": "Привет",\n oops}'.encode(), 3, 2),
        (b"", 1, 1),
        (b'{"greeting": "\xff"}', 1, 15),
        # Only orjson rejects these (the stdlib parser accepts them): its own position is used.
        (b'{\n "fillers": NaN}', 2, 13),
        ('{\n "й": "ё", "a": -Infinity}'.encode(), 2, 18),
        (b'{"greeting": "\\ud800"}', 1, 15),
    ],
)
def test_syntax_errors_name_line_and_column(data: bytes, line: int, col: int) -> None:
    with pytest.raises(DocumentSyntaxError) as exc:
        parse_document(data, source="/etc/metrotech/prompts.json")
    assert (exc.value.line, exc.value.col) == (line, col)
    assert str(exc.value).startswith(f"/etc/metrotech/prompts.json:{line}:{col}: ")


def test_columns_count_characters_not_bytes() -> None:
    data = '{"greeting": "Здравствуйте" x}'.encode()
    with pytest.raises(DocumentSyntaxError) as exc:
        parse_document(data)
    assert exc.value.col == len('{"greeting": "Здравствуйте" ') + 1


def test_size_limit() -> None:
    data = doc(padding="x" * 100)
    assert parse_document(data, limit=len(data))
    with pytest.raises(DocumentTooLargeError) as exc:
        parse_document(data, limit=len(data) - 1, source="p.json")
    assert (exc.value.size, exc.value.limit) == (len(data), len(data) - 1)
    assert "p.json" in str(exc.value)
    assert MAX_DOCUMENT_BYTES == 1024 * 1024


def test_sha256_is_of_the_exact_bytes() -> None:
    a, b = doc(), doc() + b"\n"
    assert sha256_hex(a) == hashlib.sha256(a).hexdigest()
    assert sha256_hex(a) != sha256_hex(b)
    assert parse_document(a) == parse_document(b)


def test_format_loc() -> None:
    assert format_loc(()) == "$"
    assert format_loc(("fillers", 2)) == "fillers[2]"
    assert format_loc(("a", "b", 0, "c")) == "a.b[0].c"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_a_document_error(data: bytes) -> None:
    try:
        parse_document(data)
    except DocumentError as e:
        assert str(e).startswith("<document>")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["system_prompt", "greeting", "fillers", "fallback", "x"]), json_values))
def test_any_json_object_validates_or_names_its_fields(value: dict[str, object]) -> None:
    try:
        parse_document(orjson.dumps(value))
    except DocumentSchemaError as e:
        assert e.errors and all(err.loc and err.msg for err in e.errors)
