"""The knowledge base: passages, Russian-friendly BM25 search, hot reload of the directory."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stasis.kb import KbSnapshot, KnowledgeBase, stem, tokenize

from .ari_double import wait_for


def test_stem_folds_inflections() -> None:
    assert stem("доставка") == stem("доставку") == stem("доставки") == stem("Доставкой")
    assert stem("тарифы") == stem("тариф") == stem("тарифов")
    assert tokenize("Сколько стоит ваш тариф?") == [stem("сколько"), stem("стоит"), stem("тариф")]


def test_search_finds_the_matching_passage(config_dir: Path) -> None:
    with KnowledgeBase(config_dir / "kb", hot_reload=False) as kb:
        assert [d.name for d in kb.current.documents] == ["доставка.md", "тарифы.md", "часы-работы.md"]
        best = kb.search("Сколько стоит доставка в Москву?")[0]
        assert best.doc == "доставка.md" and best.text.startswith("Доставка оборудования по Москве")
        assert "#" not in best.text
        assert kb.search("когда работает офис")[0].doc == "часы-работы.md"
        assert kb.search("тарифы", k=1)[0].doc == "тарифы.md"
        assert kb.search("абракадабра") == []
        assert kb.search("") == []


def test_markdown_json_and_text_documents(tmp_path: Path) -> None:
    (tmp_path / "faq.json").write_text(
        orjson.dumps({"вопросы": [{"гарантия": "Гарантия на оборудование — два года."}]}).decode()
    )
    (tmp_path / "notes.txt").write_text("Первый абзац про парковку.\n\nВторой абзац про кофе.\n")
    (tmp_path / "list.md").write_text("## Оплата\n\n- картой\n- **наличными** курьеру\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / ".hidden.md").write_text("скрытый")
    (tmp_path / "broken.md").write_bytes(b"\xff\xfe not utf-8 \xff")
    with KnowledgeBase(tmp_path, hot_reload=False) as kb:
        assert sorted(d.name for d in kb.current.documents) == ["faq.json", "list.md", "notes.txt"]
        assert kb.search("какая гарантия")[0].text == "Гарантия на оборудование — два года."
        assert kb.search("кофе")[0].text == "Второй абзац про кофе."
        assert kb.search("оплата")[0].text == "картой наличными курьеру"


@pytest.mark.parametrize("mode", ["inotify", "poll"])
def test_hot_reload_on_add_change_delete(tmp_path: Path, mode: str) -> None:
    kb_dir = tmp_path / "kb"
    seen: list[tuple[str, str]] = []
    with KnowledgeBase(kb_dir, mode=mode, interval=0.05) as kb:
        kb.on_reload(lambda old, new: seen.append((old.sha256, new.sha256)))
        assert kb.current.documents == () and kb.search("адрес") == []
        first = kb.current.sha256
        (kb_dir / "адрес.md").write_text("Наш адрес: улица Лесная, дом 5.")
        snap = kb.wait_for(lambda s: bool(s.search("адрес")), timeout=10)
        assert snap is not None and snap.search("адрес")[0].text == "Наш адрес: улица Лесная, дом 5."
        (kb_dir / "адрес.md").write_text("Наш адрес: проспект Мира, дом 1.")
        wait_for(lambda: kb.search("адрес") and "Мира" in kb.search("адрес")[0].text, message="changed")
        (kb_dir / "адрес.md").unlink()
        wait_for(lambda: kb.search("адрес") == [], message="deleted")
        assert seen[0][0] == first and len(seen) >= 3


def test_snapshot_identity_depends_on_names_and_content() -> None:
    from stasis.kb import KbDocument

    a = KbSnapshot.build((KbDocument("a.md", "x", "1"),))
    b = KbSnapshot.build((KbDocument("b.md", "x", "1"),))
    assert a.sha256 != b.sha256
    assert a.sha256 == KbSnapshot.build((KbDocument("a.md", "x", "1"),)).sha256


def test_special_files_and_foreign_links_are_skipped_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A FIFO, a directory, a huge sparse file and a link out of the directory: no hang, no leak, one line each."""
    import os
    import threading

    kb_dir = tmp_path / "kb"
    kb_dir.mkdir()
    (kb_dir / "good.md").write_text("Доставка по Москве бесплатно.\n")
    os.mkfifo(kb_dir / "pipe.md")
    (kb_dir / "folder.md").mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("ADMIN_TOKEN=секрет\n")
    (kb_dir / "leak.txt").symlink_to(secret)
    with open(kb_dir / "huge.md", "wb") as f:
        f.truncate(1 << 30)
    made: list[KnowledgeBase] = []
    thread = threading.Thread(target=lambda: made.append(KnowledgeBase(kb_dir, hot_reload=False)), daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "loading the knowledge base blocked"
    with made[0] as kb:
        assert [d.name for d in kb.current.documents] == ["good.md"]
        assert kb.search("секрет") == []
        kb.reload()
    warnings = [r.getMessage() for r in caplog.records if r.name == "stasis.kb" and r.levelname == "WARNING"]
    assert any(f"{kb_dir / 'pipe.md'}: is a FIFO" in w for w in warnings), warnings
    assert any(f"{kb_dir / 'folder.md'}: is a directory" in w for w in warnings), warnings
    assert any(f"{kb_dir / 'leak.txt'}: is a symlink leaving its directory" in w for w in warnings), warnings
    assert any("huge.md" in w and "larger than" in w for w in warnings), warnings
    assert len(warnings) == 4, warnings
