"""The per-host agent (``promptwatch sync``): Redis → local files, local files → Redis.

Redis is the bus, the file is each host's truth.  For every document the agent keeps the *agreed*
version (what this host's file was when it last matched Redis, see :class:`SyncState`) and reconciles:

* Redis newer, file unchanged since agreed → validate and write the file atomically (local consumers
  reload through inotify as for any save).  Invalid content is refused, the error reported, the file kept.
* file changed since agreed (a hand edit, ``promptwatch write``, a panel save on this host) → publish it
  with a compare-and-set on the agreed version.  If Redis moved on meanwhile, the local edit lost:
  it is kept in ``sync-conflicts/`` and in Redis's conflict list, logged at error level, and the host
  converges to the winner.
* Redis older than agreed, or empty (restarted without data, failed over to a replica that missed
  writes) → re-seed Redis with this host's version; a host that is behind never rolls the others back.

Threads: the stream loop (connect, reconcile everything, then ``XREAD BLOCK`` from the last id read;
every error → reconnect, and reconcile everything again: a stream alone could have gaps); the local
watcher (the core's :class:`Reloader` on the config directory); the status loop (the host record in
Redis: the agent's state and every local consumer's status, refreshed before it expires).  One lock
serialises every reconciliation.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import redis

from ..atomic import atomic_write, file_lock, read_bytes
from ..errors import ConflictError, DocumentError, PromptwatchError
from ..reload import Reloader
from ..schema import sha256_hex
from ..status import read_statuses
from ..watch import WatchMode, start_watcher
from .documents import Document, DocumentSet
from .hosts import write_local_agent
from .state import Agreed, SyncState
from .store import Remote, SyncStore

__all__ = ["SyncAgent"]

logger = logging.getLogger("promptwatch.sync")

RETRY_MIN = 0.05
RETRY_MAX = 1.0


def remove_file(path: Path, *, if_match: str) -> None:
    """Delete ``path`` if its content still has sha256 ``if_match`` (``""``: already absent), under the
    writers' lock; else :class:`ConflictError`."""
    with file_lock(path):
        data = read_bytes(path)
        current = sha256_hex(data) if data is not None else ""
        if current != if_match:
            raise ConflictError(str(path), expected=if_match, current=current or None)
        if data is not None:
            path.unlink()


class _LocalFiles(Reloader[int]):
    """The core's reload loop on the config directory: every settled change asks the agent to look."""

    def __init__(self, directory: Path, on_change: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(directory, whole_directory=True, **kwargs)
        self._on_change = on_change
        self._snapshot = 0
        self._start_watching()

    def _load(self, source: str, hint_at: float | None) -> bool:
        self._on_change()
        self._publish(self._snapshot + 1)
        return True


class SyncAgent:
    """Mirrors the documents of one namespace between Redis and this host's files."""

    def __init__(
        self,
        store: SyncStore,
        stream_store: SyncStore,
        documents: DocumentSet,
        state: SyncState,
        *,
        host: str,
        status_dir: Path,
        redis_url: str,
        block: float = 5.0,
        heartbeat: float = 5.0,
        safety_interval: float = 30.0,
        watch_mode: WatchMode | str | None = None,
    ) -> None:
        self.store = store
        self._stream = stream_store  # its own connection pool: a blocked XREAD holds its connection
        self.documents = documents
        self.state = state
        self.host = host
        self.status_dir = status_dir
        self.redis_url = redis_url
        self.block = block
        self.heartbeat = heartbeat
        self.ttl = heartbeat * 3
        self.safety_interval = safety_interval
        self.watch_mode = watch_mode
        self.connected = False
        self.last_error: str | None = None
        self.errors: dict[str, str] = {}
        self.conflicts: deque[dict[str, Any]] = deque(maxlen=20)
        self.started_at = time.time()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._status_wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._local: list[_LocalFiles] = []
        self._status_watch: Any = None
        self._reported: set[str] = set()
        self._last_id = "0-0"

    # -- lifecycle -------------------------------------------------------------------------------

    def reconcile_once(self) -> bool:
        """Connect and reconcile every document once; True when Redis was reachable and all agree."""
        try:
            self._reconcile_all()
        except redis.RedisError as e:
            self._disconnected(e)
            return False
        self._connected()
        return not self.errors

    def start(self) -> None:
        """Catch up (one reconciliation, bounded by the connect timeout), then run the threads."""
        self.reconcile_once()
        self._local = [
            _LocalFiles(
                directory,
                partial(self._local_changed, directory),
                mode=self.watch_mode,
                safety_interval=self.safety_interval,
            )
            for directory in self._watched_directories()
        ]
        self.status_dir.mkdir(parents=True, exist_ok=True)
        write_local_agent(self.status_dir, self.record())
        self._status_watch = start_watcher(
            self.status_dir, lambda source, urgent: self._status_wake.set(), mode=self.watch_mode, whole_directory=True
        )
        for target, name in ((self._stream_loop, "sync-stream"), (self._status_loop, "sync-status")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _watched_directories(self) -> list[Path]:
        dirs = [self.documents.directory]
        kb = self.documents.kb_dir
        if kb is not None:
            try:
                kb.mkdir(exist_ok=True)  # where Redis's knowledge-base files will land; not its parents
            except OSError as e:
                logger.warning("knowledge base %s not distributed: %s", kb, e.strerror or e)
            if kb.is_dir() and kb != self.documents.directory:
                dirs.append(kb)
        return dirs

    def close(self) -> None:
        self._stop.set()
        self._status_wake.set()
        for local in self._local:
            local.close()
        if self._status_watch is not None:
            self._status_watch.stop()
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        try:
            self.store.client.delete(self.store.keys.host(self.host))
        except redis.RedisError:
            pass  # expires on its own: the host then shows as disconnected, which it is

    # -- the stream loop ----------------------------------------------------------------------------

    def _stream_loop(self) -> None:
        delay = RETRY_MIN
        next_safety = time.monotonic() + self.safety_interval
        while not self._stop.is_set():
            try:
                if not self.connected:
                    self._reconcile_all()
                    self._connected()
                    delay = RETRY_MIN
                self._last_id, names = self._stream.read_changes(self._last_id, int(self.block * 1000))
                for name, version in sorted(names.items()):
                    if version > self.state.get(name).version or name in self.errors:
                        self._reconcile(name)  # not our own publication coming back, nor one applied already
                if time.monotonic() >= next_safety:
                    next_safety = time.monotonic() + self.safety_interval
                    self._safety_check()
            except redis.RedisError as e:
                self._disconnected(e)
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX)

    def _connected(self) -> None:
        if not self.connected:
            self.connected = True
            self.last_error = None
            logger.info("distributing: connected to %s as host %s", self.redis_url, self.host)
            self._status_wake.set()

    def _disconnected(self, error: Exception) -> None:
        message = f"Redis unreachable ({type(error).__name__}: {error}); local saves apply here only"
        if self.connected or self.last_error is None:
            logger.error("not distributing: %s", message)
        self.connected = False
        self.last_error = message
        self._status_wake.set()

    def _safety_check(self) -> None:
        """Compare every version with Redis (a lost stream entry, a flushed Redis) and each file with its
        agreed sha256 (a dropped inotify event)."""
        names = sorted(set(self.state.versions()) | self.store.names())
        remote = self.store.versions(names)
        for name in names:
            agreed = self.state.get(name)
            doc = self.documents.document(name)
            local = self._local_sha(doc) if doc is not None else None
            if remote[name] != agreed.version or (local is not None and local != agreed.sha256):
                self._reconcile(name)

    def _reconcile_all(self) -> None:
        with self._lock:
            last = self._stream.last_id()  # before the snapshot: whatever comes after is read again
            names = {d.name for d in self.documents.local()} | self.store.names() | set(self.state.versions())
            for name in sorted(names):
                self._reconcile(name)
            self._last_id = last

    def _local_changed(self, directory: Path) -> None:
        """A change in ``directory``: publish the documents of that directory that differ from Redis."""
        if not self.connected:
            self._status_wake.set()  # pending; published when Redis is back
            return
        try:
            with self._lock:
                for doc in self._known_documents():
                    if doc.path.parent == directory and self._local_sha(doc) != self.state.get(doc.name).sha256:
                        self._reconcile(doc.name)
        except redis.RedisError as e:
            self._disconnected(e)

    def _known_documents(self) -> list[Document]:
        """The documents present here, and those agreed before (a deleted knowledge-base file)."""
        docs = {d.name: d for d in self.documents.local()}
        for name in self.state.versions():
            if name not in docs and (doc := self.documents.document(name)) is not None:
                docs[name] = doc
        return [docs[n] for n in sorted(docs)]

    @staticmethod
    def _local_sha(doc: Document) -> str | None:
        data = read_bytes(doc.path, limit=doc.limit)
        return sha256_hex(data) if data is not None else "" if doc.deletable else None

    # -- reconciliation of one document ---------------------------------------------------------

    def _reconcile(self, name: str) -> None:
        doc = self.documents.document(name)
        if doc is None:
            return  # not a document this host distributes (a newer release's kind of file)
        with self._lock:
            for _attempt in range(10):
                if self._reconcile_step(doc):
                    return
            logger.warning("document %s keeps changing under the agent; will look again", name)

    def _reconcile_step(self, doc: Document) -> bool:
        """One decision; False when something changed meanwhile and it must be decided again.

        ``sha`` is the file's sha256; ``""`` for a deletable file that is absent (a deletion is a version
        without content); None for an absent prompts file (nothing to publish: consumers keep theirs).
        """
        name = doc.name
        agreed = self.state.get(name)
        data = read_bytes(doc.path, limit=doc.limit)
        sha = sha256_hex(data) if data is not None else "" if doc.deletable else None
        # With a local edit, also where that content came from (a lagging state after a crash): one round trip.
        remote, found = self.store.get(name, doc.limit, origin_of=sha if sha and sha != agreed.sha256 else "")
        stale = False
        if sha and sha != agreed.sha256:
            if found is not None and found[0] >= agreed.version:
                # The file is a published version our state lags behind (killed between the two writes).
                self.state.set(name, found[0], sha)
                agreed = self.state.get(name)
            elif found is not None:
                stale = True  # an older published version (a crash lost the last apply): not an edit
        edited = sha is not None and sha != agreed.sha256 and not stale
        if stale and remote is not None and remote.version >= agreed.version:
            if self._check_remote(doc, remote) is None:
                return self._apply(doc, remote, sha)
        body = data or b""
        if remote is None or remote.version < agreed.version:
            if sha is None or (sha == "" and agreed.version == 0):
                return True  # nothing here, nothing there
            if edited or agreed.version == 0:
                return self._publish(doc, body, sha, agreed, "next")
            return self._publish(doc, body, sha, agreed, "seed")
        if remote.version == agreed.version and remote.sha256 == agreed.sha256:
            if edited and sha is not None:
                return self._publish(doc, body, sha, agreed, "next")
            self.errors.pop(name, None)
            return True
        # Redis has a newer version (or the same number with other content: it is what the others run).
        if sha is not None and sha == remote.sha256:
            self.state.set(name, remote.version, remote.sha256)
            return True
        problem = self._check_remote(doc, remote)
        if problem is not None:
            self._refuse(name, problem, key=f"remote:{remote.sha256}")
            if edited and sha is not None:
                # A valid local save replaces the refused version: it is based on what Redis has now.
                return self._publish(doc, body, sha, Agreed(remote.version, remote.sha256), "next")
            return True
        if data is not None and sha and agreed.version > 0 and (edited or remote.version == agreed.version):
            # A local edit Redis never took, or a version lost in a failover that another host reused.
            self._conflict(doc, data, sha, agreed, remote)
        elif data is not None and sha and edited:
            kept = self.state.keep_conflict(name, data, sha)
            logger.warning("first sync of %s on host %s: the local file gives way to version %d; kept in %s",
                           name, self.host, remote.version, kept)  # fmt: skip
        elif sha == "" and edited:
            logger.warning("the deletion of %s on host %s lost to version %d from host %s: the file comes back",
                           name, self.host, remote.version, remote.host)  # fmt: skip
        return self._apply(doc, remote, sha)

    def _publish(self, doc: Document, data: bytes, sha: str, agreed: Agreed, mode: str) -> bool:
        try:
            if sha:  # a deletion has no content to check
                doc.validate(data, str(doc.path))
        except DocumentError as e:
            self._refuse(doc.name, f"local {doc.path} not published: {e}", key=f"local:{sha}")
            return True
        result = self.store.publish(
            doc.name, data, sha, host=self.host, version=agreed.version, mode="seed" if mode == "seed" else "next"
        )
        if result.outcome == "conflict":
            return False  # Redis moved on: decide again against its version
        self.state.set(doc.name, result.version, sha)
        self.errors.pop(doc.name, None)
        if result.outcome == "ok":
            what = "re-seeded" if mode == "seed" else "published" if sha else "published the deletion of"
            logger.info("%s %s version=%d sha=%s host=%s", what, doc.name, result.version, sha[:12], self.host)
        self._status_wake.set()
        return True

    def _source(self, doc: Document, remote: Remote) -> str:
        return f"{self.store.keys.doc(doc.name)}@v{remote.version}"

    def _check_remote(self, doc: Document, remote: Remote) -> str | None:
        """Why the version in Redis cannot be applied (the validation error, naming the place), or None."""
        source = self._source(doc, remote)
        what = f"refused version {remote.version} of {doc.name} from host {remote.host or '?'}"
        if remote.sha256 == "" and doc.deletable and not remote.size:
            return None  # a deletion
        if remote.size > doc.limit:
            return f"{what}: {source}: {remote.size} bytes, the limit is {doc.limit}"
        if sha256_hex(remote.data) != remote.sha256:
            return f"{what}: {source}: content does not match its sha256"
        try:
            doc.validate(remote.data, source)
        except DocumentError as e:
            return f"{what}: {e}"
        return None

    def _apply(self, doc: Document, remote: Remote, local_sha: str | None) -> bool:
        source = self._source(doc, remote)
        try:
            if remote.sha256 == "":
                remove_file(doc.path, if_match=local_sha or "")
            else:
                # Validated by _check_remote; durable like every other write, so after a power loss the
                # host's file is this version or the one before, never an empty or torn file.
                atomic_write(doc.path, remote.data, if_match=local_sha or "")
        except ConflictError:
            return False  # edited on this host this very moment: decide again
        except PromptwatchError as e:
            self._refuse(doc.name, f"cannot apply {source}: {e}", key=f"write:{remote.sha256}:{e}")
            return True
        self.state.set(doc.name, remote.version, remote.sha256)
        self.errors.pop(doc.name, None)
        lag_ms = max(0.0, (time.time() - remote.at) * 1000) if remote.at else 0.0
        logger.info(
            "applied %s version=%d sha=%s from host=%s lag_ms=%.1f",
            doc.name,
            remote.version,
            remote.sha256[:12] or "(deleted)",
            remote.host,
            lag_ms,
        )
        self._status_wake.set()
        return True

    def _refuse(self, name: str, message: str, *, key: str) -> None:
        self.errors[name] = message
        if key not in self._reported:
            self._reported.add(key)
            logger.error("%s; keeping the file as it is", message)
            self._status_wake.set()

    def _conflict(self, doc: Document, data: bytes, sha: str, agreed: Agreed, remote: Remote) -> None:
        kept = self.state.keep_conflict(doc.name, data, sha)
        record = {
            "name": doc.name,
            "sha256": sha,
            "host": self.host,
            "base_version": agreed.version,
            "winner_version": remote.version,
            "winner_sha256": remote.sha256,
            "winner_host": remote.host,
            "at": time.time(),
            "kept": str(kept),
        }
        logger.error(
            "conflict: the edit of %s on host %s (sha=%s, based on version %d) lost to version %d (sha=%s) "
            "from host %s; the edit is kept in %s and as a conflict revision in Redis",
            doc.name,
            self.host,
            sha[:12],
            agreed.version,
            remote.version,
            remote.sha256[:12],
            remote.host,
            kept,
        )
        self.conflicts.appendleft(record)
        try:
            self.store.add_conflict({**record, "data": data.decode("utf-8", "replace")})
        except redis.RedisError as e:
            logger.error("cannot record the conflict of %s in Redis: %s", doc.name, e)

    # -- the host record ---------------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """The agent's state and every live local consumer's status (with ``host`` and ``document``)."""
        names = {str(d.path): d.name for d in self.documents.local()}
        consumers = []
        for status in read_statuses(self.status_dir):
            doc = names.get(status.path)
            consumers.append({**asdict(status), "host": self.host, "document": doc})
        return {
            "host": self.host,
            "agent": {
                "pid": os.getpid(),
                "connected": self.connected,
                "distributing": self.connected and not self.errors,
                "redis": self.redis_url,
                "versions": self.state.versions(),
                "last_error": self.last_error or next(iter(self.errors.values()), None),
                "errors": dict(self.errors),
                "conflicts": list(self.conflicts),
                "started_at": self.started_at,
                "updated_at": time.time(),
            },
            "consumers": consumers,
        }

    def _status_loop(self) -> None:
        """Publish the host record when it changed, and at least every heartbeat (its expiry is 3 of them).

        Writing ``.sync.json`` wakes the status-directory watcher too: it is written only when the record
        changed, so the agent never wakes itself in a loop, and an idle agent wakes once per heartbeat.
        """
        last: bytes | None = None
        due = 0.0
        was_connected = False
        while not self._stop.is_set():
            self._status_wake.wait(max(0.0, due - time.monotonic()) if last is not None else 0.0)
            self._status_wake.clear()
            if self._stop.is_set():
                return
            record = self.record()
            agent = record["agent"]
            key = orjson.dumps({**record, "agent": {**agent, "updated_at": None}})
            now = time.monotonic()
            reconnected = self.connected and not was_connected
            was_connected = self.connected
            changed = key != last
            if not changed and now < due and not reconnected:
                continue
            last, due = key, now + self.heartbeat
            if changed:  # the local record's liveness is its pid: only Redis's copy needs the heartbeat
                try:
                    write_local_agent(self.status_dir, record)
                except (OSError, PromptwatchError) as e:
                    logger.warning("cannot write the agent status in %s: %s", self.status_dir, e)
            if not self.connected:
                continue
            try:
                self.store.put_host(self.host, record, self.ttl)
            except redis.RedisError as e:
                logger.warning("cannot publish the status of host %s: %s", self.host, e)
