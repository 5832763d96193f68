"""Which files are distributed under which name: by document name, never by local path."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptwatch.errors import DocumentError
from promptwatch.sync import DocumentSet


@pytest.fixture
def docs(tmp_path: Path) -> DocumentSet:
    (tmp_path / "kb").mkdir()
    return DocumentSet(tmp_path / "bot.json", tmp_path / "kb", limit=200, kb_limit=10)


@pytest.mark.parametrize(
    ("name", "relative"),
    [
        ("prompts", "bot.json"),
        ("prompts.staging", "bot.staging.json"),
        ("kb/тарифы.md", "kb/тарифы.md"),
        ("kb/../x.md", None),
        ("kb/.hidden.md", None),
        ("kb/x.exe", None),
        ("prompts.Bad Label", None),
        ("prompts./etc/passwd", None),
        ("other", None),
    ],
)
def test_names_map_to_paths_inside_the_directories(docs: DocumentSet, name: str, relative: str | None) -> None:
    doc = docs.document(name)
    if relative is None:
        assert doc is None
    else:
        assert doc is not None and doc.path == docs.directory / relative
        assert docs.name_of(doc.path) == name or name.startswith("kb/")


def test_a_non_nfc_knowledge_base_name_is_refused(docs: DocumentSet) -> None:
    assert docs.document("kb/e\u0301.md") is None  # only the normal form names a file: never two names for one


def test_local_lists_the_main_file_labels_and_knowledge_base(docs: DocumentSet) -> None:
    (docs.directory / "bot.json").write_text("{}")
    (docs.directory / "bot.prod.json").write_text("{}")
    (docs.directory / "notes.json").write_text("{}")
    (docs.directory / "kb" / "a.md").write_text("a")
    (docs.directory / "kb" / ".pw-tmp-a.md.x").write_text("a")
    assert [d.name for d in docs.local()] == ["prompts", "prompts.prod", "kb/a.md"]


def test_each_kind_has_its_own_validation_and_limit(docs: DocumentSet) -> None:
    main, kb = docs.document("prompts"), docs.document("kb/a.json")
    assert main is not None and kb is not None and kb.deletable and not main.deletable
    with pytest.raises(DocumentError, match="greeting"):
        main.validate(b'{"system_prompt": "x"}', "src")
    with pytest.raises(DocumentError, match="not valid JSON"):
        kb.validate(b"{", "src")
    with pytest.raises(DocumentError, match="the knowledge-base limit is 10"):
        kb.validate(b'"0123456789"', "src")
