"""Knowledge-base uploads: atomic, Unicode names, nothing written for unsafe names or non-text content."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from adminapi.knowledge import KbNameError, check_name


def listing(kb_dir: Path) -> set[str]:
    return {p.name for p in kb_dir.iterdir()}


def test_upload_list_get_delete_with_a_cyrillic_name(client: httpx.Client, config_dir: Path) -> None:
    kb = config_dir / "kb"
    text = "# Тарифы\n\nБазовый тариф — 500 рублей в месяц.\n"
    r = client.post("/api/kb", files={"file": ("тарифы.md", text.encode(), "text/markdown")})
    assert r.status_code == 200, r.text  # replaced the sample file of that name
    assert r.json()["name"] == "тарифы.md" and r.json()["size"] == len(text.encode())
    assert (kb / "тарифы.md").read_text(encoding="utf-8") == text
    r = client.post("/api/kb", files={"file": ("новости.txt", "Новости компании".encode(), "text/plain")})
    assert r.status_code == 201
    names = [f["name"] for f in client.get("/api/kb").json()["files"]]
    assert names == sorted(["доставка.md", "тарифы.md", "часы-работы.md", "новости.txt"])
    r = client.get(f"/api/kb/{quote('тарифы.md')}")
    assert r.status_code == 200 and r.text == text
    assert r.headers["content-type"] == "text/markdown; charset=utf-8"
    assert client.delete("/api/kb/новости.txt").status_code == 204
    assert client.get("/api/kb/новости.txt").status_code == 404
    assert client.delete("/api/kb/новости.txt").status_code == 404
    assert not [n for n in listing(kb) if n.startswith(".")], listing(kb)


def test_upload_under_a_given_name_and_json(client: httpx.Client, config_dir: Path) -> None:
    r = client.post(
        "/api/kb", files={"file": ("blob", b'{"\xd0\xb0": 1}', "application/json")}, data={"name": "данные.json"}
    )
    assert r.status_code == 201, r.text
    assert (config_dir / "kb" / "данные.json").read_bytes() == b'{"\xd0\xb0": 1}'


@pytest.mark.parametrize(
    ("name", "content", "status"),
    [
        ("../prompts.json", b'{"a": 1}', 400),
        ("../../evil.md", b"x", 400),
        ("/etc/evil.md", b"x", 400),
        ("sub/dir.md", b"x", 400),
        ("..\\evil.md", b"x", 400),
        (".hidden.md", b"x", 400),
        ("..", b"x", 400),
        ("tab\tname.md", b"x", 400),
        ("script.sh", b"echo hi", 400),
        ("noext", b"x", 400),
        (".md", b"x", 400),
        ("picture.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 415),
        ("latin1.txt", "café".encode("latin-1"), 415),
        ("nul.txt", b"abc\x00def", 415),
        ("broken.json", b'{"a": ', 415),
    ],
)
def test_unsafe_names_and_non_text_are_rejected_with_nothing_written(
    client: httpx.Client, config_dir: Path, tmp_path: Path, name: str, content: bytes, status: int
) -> None:
    before_kb = listing(config_dir / "kb")
    before_config = listing(config_dir)
    prompts = (config_dir / "prompts.json").read_bytes()
    r = client.post("/api/kb", files={"file": ("upload.md", content, "application/octet-stream")}, data={"name": name})
    assert r.status_code == status, r.text
    assert listing(config_dir / "kb") == before_kb
    assert listing(config_dir) == before_config
    assert (config_dir / "prompts.json").read_bytes() == prompts
    assert not (tmp_path / "evil.md").exists()


def test_traversal_in_the_path_of_get_and_delete(client: httpx.Client, config_dir: Path) -> None:
    for path in ["/api/kb/..%2Fprompts.json", "/api/kb/%2E%2E", "/api/kb/.hidden.md", "/api/kb/%2Fetc%2Fpasswd"]:
        assert client.get(path).status_code in {400, 404}, path
        assert client.delete(path).status_code in {400, 404}, path
    assert (config_dir / "prompts.json").exists()


def test_upload_over_the_limit_gets_413(served: object, client: httpx.Client, config_dir: Path) -> None:
    limit = client.get("/api/kb").json()["max_bytes"]
    r = client.post("/api/kb", files={"file": ("большой.md", b"a" * (limit + 1), "text/markdown")})
    assert r.status_code == 413
    assert not (config_dir / "kb" / "большой.md").exists()


def test_names_are_nfc_normalised() -> None:
    decomposed = "й.md".replace("й", "и\u0306")
    assert check_name(decomposed) == "й.md"
    with pytest.raises(KbNameError):
        check_name("a\u200b.md")  # zero-width space: a format character


def test_an_oversized_upload_is_refused_from_its_declared_length(client: httpx.Client, config_dir: Path) -> None:
    limit = client.get("/api/kb").json()["max_bytes"]
    r = client.post("/api/kb", files={"file": ("огромный.md", b"a" * (limit + 200 * 1024), "text/markdown")})
    assert r.status_code == 413 and "the limit is" in r.json()["detail"]
    assert not (config_dir / "kb" / "огромный.md").exists()


def test_a_consumer_knowledge_base_hot_reloads_an_upload(client: httpx.Client, config_dir: Path) -> None:
    from stasis.kb import KnowledgeBase

    kb = KnowledgeBase(config_dir / "kb")
    try:
        text = "# Рассрочка\n\nРассрочка на 12 месяцев без переплаты.\n"
        assert (
            client.post("/api/kb", files={"file": ("рассрочка.md", text.encode(), "text/markdown")}).status_code == 201
        )
        snap = kb.wait_for(lambda s: any(d.name == "рассрочка.md" for d in s.documents), timeout=10)
        assert snap is not None
        assert kb.search("рассрочка", 1)[0].doc == "рассрочка.md"
        assert client.delete("/api/kb/рассрочка.md").status_code == 204
        assert kb.wait_for(lambda s: all(d.name != "рассрочка.md" for d in s.documents), timeout=10) is not None
    finally:
        kb.close()
