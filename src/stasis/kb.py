"""The knowledge base: a hot-reloaded directory of UTF-8 documents, searched with BM25.

    kb = KnowledgeBase(Path("config/kb"))
    kb.current.sha256, kb.current.documents     # an immutable snapshot, like the prompts
    kb.search("сколько стоит доставка", k=3)    # [Passage(doc, text, score), ...]
    kb.close()

Documents are the directory's files that :func:`promptwatch.kbrules.is_kb_document` accepts (the
panel's upload rules; hidden and temporary files are ignored).  Each is split into paragraph-sized
passages; a Markdown heading is kept with the paragraph under it for matching.  Words are matched
by a light Russian stemmer, so ``доставка``/``доставку``/``доставки`` are one term.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rank_bm25 import BM25Okapi

from promptwatch import UnsafeFileError, read_file
from promptwatch.kbrules import KB_MAX_BYTES, is_kb_document
from promptwatch.reload import Reloader
from promptwatch.settings import PromptsSettings
from promptwatch.watch import WatchMode

__all__ = ["KbDocument", "KbSnapshot", "KnowledgeBase", "Passage", "stem", "tokenize"]

logger = logging.getLogger("stasis.kb")

MAX_PASSAGE_CHARS = 600

# Endings of Russian nouns, adjectives and verbs, longest first; stripped once, keeping a stem of 3+.
_ENDINGS = tuple(
    sorted(
        """
        иями ями ами ах ях ов ев ей ом ем ём ой ою ею ам ям ий ый ая яя ое ее ие ые ого его ому ему ими ыми
        ую юю а я о е ё ы и у ю ь ть ться тся ет ют ут ит ят ешь ишь ем им ете ите ает яет ал ала али ало
        ил ила или ило ует уют ение ения ений ению ением ость ости остью
        """.split(),
        key=len,
        reverse=True,
    )
)
_STOPWORDS = frozenset(
    """
    и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только ее мне было вот от
    меня еще нет о из ему теперь когда даже ну вдруг ли если уже или ни быть был него до вас нибудь опять уж
    вам ведь там потом себя ничего ей может они тут где есть надо ней для мы тебя их чем была сам чтобы без
    будто чего раз тоже себе под будет ж тогда кто этот того потому этого какой совсем ним здесь этом один
    почти мой тем чтобы нее сейчас были куда зачем всех никогда можно при наконец два об другой хоть после
    над больше тот через эти нас про всего них какая много разве три эту моя впрочем хорошо свою этой перед
    иногда лучше чуть том нельзя такой им более всегда конечно всю между а ваш ваша ваши вашей скажите
    подскажите пожалуйста хочу хотел хотела узнать мне
    the a an of to in is are and or what how
    """.split()
)
_WORD = re.compile(r"[\w]+", re.UNICODE)


def stem(word: str) -> str:
    """A light stem: lower-case, ``ё`` → ``е``, one inflection ending stripped (stem of 3+ letters)."""
    word = word.lower().replace("ё", "е")
    if len(word) > 4 and not word.isdigit():
        for ending in _ENDINGS:
            if word.endswith(ending) and len(word) - len(ending) >= 3:
                return word[: -len(ending)]
    return word


def tokenize(text: str) -> list[str]:
    """Stemmed content words of ``text`` (stop words and one-letter words dropped)."""
    out: list[str] = []
    for raw in _WORD.findall(text.lower().replace("ё", "е")):
        if raw in _STOPWORDS or (len(raw) < 2 and not raw.isdigit()):
            continue
        out.append(stem(raw))
    return out


@dataclass(frozen=True, slots=True)
class KbDocument:
    """One file of the knowledge base."""

    name: str
    text: str
    sha256: str


@dataclass(frozen=True, slots=True)
class Passage:
    """A paragraph of a document and how well it matched a query (higher is better)."""

    doc: str
    text: str
    score: float = 0.0


@dataclass(frozen=True)
class KbSnapshot:
    """One version of the knowledge base; never mutated."""

    sha256: str
    documents: tuple[KbDocument, ...]
    loaded_at: float
    passages: tuple[Passage, ...] = field(default=(), repr=False, compare=False)
    _index: Any = field(default=None, repr=False, compare=False)
    _tokens: tuple[frozenset[str], ...] = field(default=(), repr=False, compare=False)

    @staticmethod
    def digest(documents: tuple[KbDocument, ...]) -> str:
        """The identity of a set of documents: sha256 over their names and contents' sha256."""
        digest = hashlib.sha256()
        for doc in documents:
            digest.update(f"{doc.name}\0{doc.sha256}\n".encode())
        return digest.hexdigest()

    @classmethod
    def build(cls, documents: tuple[KbDocument, ...]) -> KbSnapshot:
        passages: list[Passage] = []
        corpus: list[list[str]] = []
        for doc in documents:
            for heading, text in split_passages(doc):
                tokens = tokenize(f"{heading} {text}")
                if tokens:
                    passages.append(Passage(doc.name, text))
                    corpus.append(tokens)
        index = BM25Okapi(corpus) if corpus else None
        return cls(
            cls.digest(documents),
            documents,
            time.time(),
            tuple(passages),
            index,
            tuple(frozenset(t) for t in corpus),
        )

    def search(self, query: str, k: int = 3) -> list[Passage]:
        """The ``k`` best passages sharing at least one term with ``query``, best first."""
        terms = tokenize(query)
        if not terms or self._index is None or k <= 0:
            return []
        scores = self._index.get_scores(terms)
        wanted = set(terms)
        ranked = sorted(
            (i for i, toks in enumerate(self._tokens) if toks & wanted),
            key=lambda i: (-float(scores[i]), i),
        )
        return [Passage(self.passages[i].doc, self.passages[i].text, float(scores[i])) for i in ranked[:k]]


def _clean_markdown(line: str) -> str:
    line = re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", line)
    line = re.sub(r"[*_`]+", "", line)
    return re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line).strip()


def _json_strings(value: object, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        if value.strip():
            yield key, value.strip()
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _json_strings(v, str(k))
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item, key)


def _chunks(text: str) -> Iterator[str]:
    """Split an over-long paragraph at sentence ends into pieces of at most ~MAX_PASSAGE_CHARS."""
    if len(text) <= MAX_PASSAGE_CHARS:
        yield text
        return
    piece = ""
    for sentence in re.split(r"(?<=[.!?…])\s+", text):
        if piece and len(piece) + len(sentence) + 1 > MAX_PASSAGE_CHARS:
            yield piece
            piece = sentence
        else:
            piece = f"{piece} {sentence}".strip()
    if piece:
        yield piece


def split_passages(doc: KbDocument) -> Iterator[tuple[str, str]]:
    """``(heading, text)`` pairs: paragraphs of text and Markdown, string values of JSON."""
    if doc.name.lower().endswith(".json"):
        try:
            data = orjson.loads(doc.text)
        except orjson.JSONDecodeError:
            data = doc.text
        for key, text in _json_strings(data):
            for chunk in _chunks(" ".join(text.split())):
                yield key, chunk
        return
    heading = Path(doc.name).stem.replace("-", " ").replace("_", " ")
    for block in re.split(r"\n\s*\n", doc.text):
        lines = [ln for ln in block.strip().splitlines() if ln.strip()]
        body: list[str] = []
        for line in lines:
            if line.lstrip().startswith("#"):
                heading = line.strip().lstrip("#").strip()
            else:
                body.append(_clean_markdown(line))
        text = " ".join(" ".join(body).split())
        if text:
            for chunk in _chunks(text):
                yield heading, chunk


ReloadCallback = Callable[[KbSnapshot, KbSnapshot], None]


class KnowledgeBase(Reloader[KbSnapshot]):
    """Keeps the current :class:`KbSnapshot` of ``directory``, reloading it on every change."""

    def __init__(
        self,
        directory: Path,
        *,
        hot_reload: bool = True,
        mode: WatchMode | str | None = None,
        interval: float = 1.5,
        max_bytes: int = KB_MAX_BYTES,
    ) -> None:
        directory = Path(os.path.abspath(directory))
        self.max_bytes = max_bytes
        with contextlib.suppress(OSError):
            directory.mkdir(parents=True, exist_ok=True)  # so that it can be watched before the first upload
        super().__init__(directory, hot_reload=hot_reload, mode=mode, interval=interval, whole_directory=True)
        self.last_error: str | None = None
        self._skipped: set[tuple[str, str]] = set()
        self._snapshot = KbSnapshot.build(self._read_documents())
        logger.info(
            "knowledge base loaded sha=%s documents=%d passages=%d dir=%s",
            self._snapshot.sha256[:8],
            len(self._snapshot.documents),
            len(self._snapshot.passages),
            directory,
        )
        self._start_watching()

    @classmethod
    def from_settings(cls, settings: PromptsSettings) -> KnowledgeBase:
        """The knowledge base every process builds from the shared settings (directory, limit, watching)."""
        return cls(
            settings.knowledge_base_dir,
            hot_reload=settings.prompts_hot_reload,
            mode=settings.prompts_watch_mode,
            interval=settings.reload_interval,
            max_bytes=settings.kb_max_bytes,
        )

    @property
    def directory(self) -> Path:
        return self.path

    def search(self, query: str, k: int = 3) -> list[Passage]:
        """The best ``k`` passages of the current snapshot for ``query``."""
        return self._snapshot.search(query, k)

    def _read_documents(self) -> tuple[KbDocument, ...]:
        docs: list[KbDocument] = []
        try:
            entries = sorted(os.scandir(self.path), key=lambda e: e.name)
        except FileNotFoundError:
            return ()
        except OSError as e:
            logger.warning("cannot list knowledge base %s: %s", self.path, e.strerror or e)
            return tuple(self._snapshot.documents) if hasattr(self, "_snapshot") else ()
        for entry in entries:
            name = entry.name
            if not is_kb_document(name):
                continue
            try:
                # Never blocks on a FIFO, reads at most the limit + 1 bytes, follows a symlink only
                # inside the directory (a ConfigMap), never to a file another user points it at; the
                # directory itself is walked from its parent, so a kb/ replaced by a link out is refused.
                data = read_file(Path(entry.path), limit=self.max_bytes, base=self.path.parent).data
            except FileNotFoundError:
                continue
            except (OSError, UnsafeFileError) as e:
                why = str(e) if isinstance(e, UnsafeFileError) else f"{entry.path}: {e.strerror or e}"
                if (name, why) not in self._skipped:
                    self._skipped.add((name, why))
                    logger.warning("knowledge base file skipped: %s", why)
                continue
            sha = hashlib.sha256(data).hexdigest()
            problem: str | None = None
            if len(data) > self.max_bytes:
                problem = f"larger than {self.max_bytes} bytes"
            else:
                try:
                    text = data.decode("utf-8-sig")
                except UnicodeDecodeError as e:
                    problem = f"not UTF-8 (byte {e.start})"
            if problem is not None:
                if (name, sha) not in self._skipped:
                    self._skipped.add((name, sha))
                    logger.warning("knowledge base file %s skipped: %s", entry.path, problem)
                continue
            docs.append(KbDocument(name, text, sha))
        return tuple(docs)

    def _load(self, source: str, hint_at: float | None) -> bool:
        documents = self._read_documents()
        if KbSnapshot.digest(documents) == self._snapshot.sha256:
            return False
        new = KbSnapshot.build(documents)
        old = self._publish(new)
        logger.info(
            "knowledge base reloaded sha=%s source=%s documents=%d passages=%d previous=%s",
            new.sha256[:8],
            source,
            len(new.documents),
            len(new.passages),
            old.sha256[:8],
        )
        self._notify_reload(old, new)
        return True

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
