"""The ``promptwatch`` command: check, write, watch, status, config, labels, promote.

Every command finds the prompts through ``PROMPTS_PATH`` (environment or env file, see
:mod:`promptwatch.settings`) unless given a path.  ``-`` is standard input wherever a file is read.

Exit codes: 0 success, 1 invalid document / conflict / startup failure, 2 usage error.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson
import redis
from pydantic import ValidationError

from .atomic import read_bytes, write_document
from .errors import PromptwatchError, UnsafeFileError
from .etag import normalize_sha
from .history import history_file
from .labels import PRODUCTION, document_name, label_of, list_labels
from .logs import setup_logging
from .promotion import Promotion, promote, record_promotion
from .safeio import read_file
from .schema import parse_document, sha256_hex
from .settings import SYNC_SERVICE, WATCH_SERVICE, PromptsSettings, check_interval_ms, settings_error
from .snapshot import HotPrompts, Snapshot
from .stackconfig import StackReport, load_stack
from .status import read_statuses
from .watch import WatchMode

__all__ = ["main"]

T = TypeVar("T")


def _err(message: str) -> None:
    print(f"promptwatch: {message}", file=sys.stderr)


def _read_input(name: str, limit: int) -> bytes:
    """The bytes of file ``name`` (``-``: stdin), at most ``limit`` + 1 so a huge input is refused cheaply."""
    if name == "-":
        return sys.stdin.buffer.read(limit + 1)
    with open(name, "rb") as f:
        return f.read(limit + 1)


def _valid_option(flag: str, value: T | None, check: Callable[[T], object]) -> bool:
    """False (the problem printed, naming ``flag``) when ``check`` refuses ``value``; True when unset or valid."""
    if value is None:
        return True
    try:
        check(value)
    except ValueError as e:
        _err(f"{flag}: {e}")
        return False
    return True


def _file_arg(args: argparse.Namespace, settings: PromptsSettings) -> str:
    return str(args.file) if args.file is not None else str(settings.prompts_path)


def cmd_check(args: argparse.Namespace) -> int:
    settings = _settings()
    name = _file_arg(args, settings)
    try:
        if name == "-":
            data, size = _read_input(name, settings.prompts_max_bytes), None
        else:  # never blocks on a FIFO, never reads more than the limit + 1 bytes
            content = read_file(Path(name), limit=settings.prompts_max_bytes)
            data, size = content.data, content.size
        prompts = parse_document(
            data, source="<stdin>" if name == "-" else name, limit=settings.prompts_max_bytes, size=size
        )
    except OSError as e:
        _err(f"{name}: {e.strerror}")
        return 1
    except PromptwatchError as e:
        print(e, file=sys.stderr)
        return 1
    keys = len(prompts.model_dump(exclude_unset=True))
    print(f"{name}: ok sha256={sha256_hex(data)} bytes={len(data)} prompts={keys}")
    return 0


def cmd_write(args: argparse.Namespace) -> int:
    settings = _settings()
    if (args.src is None) == (args.source is None):
        _err("write: give the new content once: SRC or --from SRC (- for stdin)")
        return 2
    source = args.src if args.src is not None else args.source
    if not _valid_option("--if-match", args.if_match, normalize_sha):
        return 2
    try:
        data = _read_input(source, settings.prompts_max_bytes)
    except OSError as e:
        _err(f"{source}: {e.strerror}")
        return 1
    try:
        sha, _ = write_document(
            Path(args.file),
            data,
            if_match=args.if_match,
            source="<stdin>" if source == "-" else source,
            limit=settings.prompts_max_bytes,
        )
    except PromptwatchError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"{args.file}: written sha256={sha} bytes={len(data)}")
    return 0


def _line(
    ok: bool,
    snap: Snapshot,
    mode: str,
    *,
    error: str | None = None,
    rejected: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    return {
        "ok": ok,
        "sha256": snap.sha256,
        "rejected_sha256": rejected,
        "source": source or snap.source,
        "loaded_at": snap.loaded_at,
        "bytes": snap.size,
        "error": error,
        "mode": mode,
        "path": str(snap.path),
    }


def _settings() -> PromptsSettings:
    """The settings from the environment and env files; a bad value is a startup error naming the variable."""
    try:
        return PromptsSettings.load()
    except ValidationError as e:
        raise settings_error(e) from None


_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def cmd_watch(args: argparse.Namespace) -> int:
    settings = _settings()
    if not _valid_option("--interval-ms", args.interval_ms, check_interval_ms):
        return 2
    lock = threading.Lock()
    emitted = [0]  # lines printed so far: tells whether a SIGHUP reload already printed its outcome

    def emit(record: dict[str, Any]) -> None:
        if args.json:
            text = orjson.dumps(record).decode()
        elif record["ok"]:
            text = f"loaded sha256={record['sha256'][:12]} source={record['source']} bytes={record['bytes']}"
        else:
            text = f"rejected (keeping sha256={record['sha256'][:12]}) source={record['source']}: {record['error']}"
        with lock:
            emitted[0] += 1  # before the line is out: whoever reads it sees the count
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    # No signal handlers: SIGINT, SIGTERM and SIGHUP are blocked in every thread (the watcher threads
    # inherit the mask) and the main loop takes them one by one with sigwait().  A handler waking the
    # main thread from a blocking queue.get() can miss the wakeup and hang; sigwait() cannot.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        return _watch_loop(args, settings, emit, emitted)
    finally:
        # Shutting down: a SIGHUP or a second SIGTERM that came meanwhile is consumed, not acted on.
        while signal.sigpending() & set(_SIGNALS):
            signal.sigwait(_SIGNALS)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _watch_loop(
    args: argparse.Namespace,
    settings: PromptsSettings,
    emit: Callable[[dict[str, Any]], None],
    emitted: list[int],
) -> int:
    interval = (args.interval_ms if args.interval_ms is not None else settings.prompts_reload_interval_ms) / 1000
    try:
        path = Path(os.path.abspath(_file_arg(args, settings)))
        label = label_of(settings.prompts_file, path) or PRODUCTION  # a label file beside PROMPTS_PATH says so
        prompts = HotPrompts.from_settings(
            settings, service=args.service, path=path, mode=args.mode, interval=interval, label=label
        )
    except PromptwatchError as e:
        _err(str(e))
        return 1
    try:
        # Callbacks first: a write landing right after the first line must get its own line.
        prompts.on_reload(lambda old, new: emit(_line(True, new, prompts.mode)))
        prompts.on_error(
            lambda msg, sha, src: emit(_line(False, prompts.current, prompts.mode, error=msg, rejected=sha, source=src))
        )
        emit(_line(True, prompts.current, prompts.mode))
        while signal.sigwait(_SIGNALS) == signal.SIGHUP:
            before = emitted[0]
            prompts.reload("signal")
            if emitted[0] == before:  # unchanged, or bad content already reported: say how this attempt went
                error = prompts.last_error
                emit(_line(error is None, prompts.current, prompts.mode, error=error, source="signal"))
    finally:
        prompts.close()
    return 0


def _cluster(settings: PromptsSettings, path: Path, status_dir: Path) -> dict[str, Any]:
    """Every consumer of the document at ``path``: this host's, and with Redis every host's."""
    from .sync import DocumentSet, Keys, client, parse_url, read_hosts, read_local_agent
    from .sync.view import cluster_view

    main = Path(os.path.abspath(settings.prompts_path))
    document = DocumentSet(main).name_of(path) or os.path.basename(path)
    hosts = None
    error = None
    if settings.prompts_redis_url:
        try:
            r = client(parse_url(settings.prompts_redis_url))
            try:
                hosts = read_hosts(r, Keys(settings.prompts_namespace))
            finally:
                r.close()
        except redis.RedisError as e:
            error = f"Redis unreachable: {e}"
    return cluster_view(
        document=document,
        local_host=settings.prompts_host,
        local=read_statuses(status_dir, path=path),
        local_agent=read_local_agent(status_dir) if settings.prompts_redis_url else None,
        hosts=hosts,
        redis_error=error,
    )


def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings()
    path = Path(os.path.abspath(args.file or settings.prompts_path))
    status_dir = Path(args.status_dir) if args.status_dir else settings.prompts_status_dir
    disk_error: str | None = None
    try:
        data = read_bytes(path, limit=settings.prompts_max_bytes)
    except (OSError, UnsafeFileError) as e:  # a FIFO, a directory, a symlink loop: say so, list the consumers
        data, disk_error = None, str(e) if isinstance(e, UnsafeFileError) else f"{path}: {e.strerror}"
    disk_sha = sha256_hex(data) if data is not None else None
    view = _cluster(settings, path, status_dir)
    for c in view["consumers"]:
        c["in_sync"] = c["sha256"] == disk_sha
    if args.json:
        out = {"path": str(path), "sha256": disk_sha, "error": disk_error, **view}
        sys.stdout.write(orjson.dumps(out).decode() + "\n")
        return 0
    print(disk_error if disk_error else f"{path}: sha256={disk_sha[:12] if disk_sha else 'missing'}")
    if view["distributing"] is False:
        print(f"  NOT distributing to other hosts: {view['not_distributing_reason']}")
    several = view["distributing"] is not None
    if not view["consumers"]:
        print(f"  no live consumers (status directory {status_dir})")
    for host in view["hosts"]:
        indent = "  "
        if several:
            agent = host["agent"]
            if host["connected"]:
                state = "agent connected"
            elif agent is not None:
                state = "agent DISCONNECTED from Redis"
            elif host["host"] == view["host"]:
                state = "no sync agent runs here"
            else:
                state = "agent DISCONNECTED (its record expired: the agent or the host is down)"
            if agent and agent.get("last_error"):
                state += f" ({agent['last_error']})"
            print(f"  host {host['host']}: {state}")
            indent = "    "
            for conflict in (agent or {}).get("conflicts") or []:
                print(
                    f"{indent}CONFLICT: edit sha256={conflict['sha256'][:12]} lost to version"
                    f" {conflict['winner_version']} from host {conflict['winner_host']}; kept in {conflict['kept']}"
                )
        for c in host["consumers"]:
            state = "in sync" if c["sha256"] == disk_sha else f"STALE on {(c['sha256'] or '?')[:12]}"
            age = time.time() - (c["loaded_at"] or 0)
            line = f"{indent}{c['service']} pid={c['pid']} {state} mode={c['mode']} loaded {age:.0f}s ago"
            if c["last_error"]:
                line += f" last_error={c['last_error']}"
            print(line)
    return 0


def _prompts_path(arg: str | None, settings: PromptsSettings) -> Path:
    """The production prompts file: the argument, else ``PROMPTS_PATH``; absolute, as consumers report it."""
    return Path(os.path.abspath(arg or settings.prompts_path))


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def cmd_labels(args: argparse.Namespace) -> int:
    settings = _settings()
    path = _prompts_path(args.file, settings)
    status_dir = Path(args.status_dir) if args.status_dir else settings.prompts_status_dir
    found = list_labels(path, limit=settings.prompts_max_bytes)
    rows: list[dict[str, Any]] = []
    for lf in found:
        consumers = read_statuses(status_dir, path=lf.path)
        rows.append(
            {
                "label": lf.label,
                "path": str(lf.path),
                "document": document_name(lf.label),
                "sha256": lf.sha256,
                "size": lf.size,
                "mtime": lf.mtime,
                "consumers": [
                    {
                        "service": c.service,
                        "pid": c.pid,
                        "hostname": c.hostname,
                        "sha256": c.sha256,
                        "in_sync": c.sha256 == lf.sha256,
                        "last_error": c.last_error,
                    }
                    for c in consumers
                ],
            }
        )
    if args.json:
        sys.stdout.write(orjson.dumps({"path": str(path), "labels": rows}).decode() + "\n")
        return 0
    if not rows:
        print(f"{path}: no prompts files")
        return 0
    width = max(len(r["label"]) for r in rows)
    for r in rows:
        running = ", ".join(
            f"{c['service']} pid={c['pid']}" + ("" if c["in_sync"] else f" STALE on {(c['sha256'] or '?')[:12]}")
            for c in r["consumers"]
        )
        print(
            f"{r['label']:<{width}}  sha256={r['sha256'][:12]}  bytes={r['size']}  modified={_iso(r['mtime'])}"
            f"  consumers: {running or 'none'}"
        )
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    settings = _settings()
    path = _prompts_path(args.prompts, settings)
    try:
        author = f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER
        author = f"cli:uid{os.getuid()}"
    record_failed: list[str] = []

    def record(promotion: Promotion) -> None:
        try:
            record_promotion(settings.state_dir, promotion, author=author)
        except (OSError, sqlite3.Error) as e:  # the write stands; say that the history misses it
            record_failed.append(f"{history_file(settings.state_dir, promotion.dst)}: {e}")

    if args.if_match is not None:
        try:
            normalize_sha(args.if_match)
        except ValueError as e:
            _err(f"--if-match: {e}")
            return 2
    try:
        done = promote(
            path, args.src, args.dst, if_match=args.if_match, record=record, limit=settings.prompts_max_bytes
        )
    except PromptwatchError as e:
        print(e, file=sys.stderr)
        return 1
    was = done.previous_sha256[:12] if done.previous_sha256 else "no file"
    print(f"{args.dst}: promoted from {args.src} sha256={done.sha256} bytes={done.size} (was {was})")
    for problem in record_failed:
        _err(f"warning: not recorded in the history: {problem}")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from .sync.factory import SyncSettings
    from .sync.service import run_sync

    try:
        settings = SyncSettings.load()
    except ValidationError as e:
        raise settings_error(e) from None
    return run_sync(settings, Path(args.file) if args.file else None, once=args.once)


def cmd_config(args: argparse.Namespace) -> int:
    report = load_stack()
    problems = report.problems() if args.check else list(report.errors)
    if args.json:
        out: dict[str, Any] = {"settings": report.as_json(), "env_files": [str(p) for p in report.env_files]}
        if args.check:
            out["problems"] = problems
        sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif args.check:
        for problem in problems:
            print(f"promptwatch: {problem}", file=sys.stderr)
        verdict = f"{len(problems)} problem(s)" if problems else "ok"
        print(f"stack configuration: {verdict} (env files: {_files(report)})")
    else:
        files = _files(report)
        print(f"# effective settings of the stack (env files: {files})")
        width = max((len(n) for n in report.settings), default=0)
        for name, entry in sorted(report.settings.items()):
            value = "" if entry.value is None else entry.value
            print(f"{name}={value}".ljust(width + 30) + f"  # {entry.source}; {', '.join(entry.services)}")
        for problem in problems:
            print(f"promptwatch: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _files(report: StackReport) -> str:
    return ", ".join(str(p) for p in report.env_files) or "none"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="promptwatch", description="Validated atomic prompts with hot reload.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="validate a prompts file (like nginx -t)")
    p.add_argument("file", nargs="?", help="the prompts file, or - for stdin (default PROMPTS_PATH)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("write", help="validate and atomically write a prompts file")
    p.add_argument("file")
    p.add_argument("src", nargs="?", metavar="SRC", help="read the new content from SRC (- for stdin)")
    p.add_argument("--from", dest="source", metavar="SRC", help="the same as SRC")
    p.add_argument(
        "--if-match",
        metavar="SHA256",
        help="write only if the file still has this sha256 (also a quoted ETag, or 7+ leading hex digits)",
    )
    p.set_defaults(func=cmd_write)

    p = sub.add_parser("watch", help="run a consumer and print one line per load attempt")
    p.add_argument("file", nargs="?", help="the prompts file (default PROMPTS_PATH)")
    p.add_argument("--mode", choices=[m.value for m in WatchMode])
    p.add_argument("--interval-ms", type=int, metavar="N", help="poll interval (default PROMPTS_RELOAD_INTERVAL_MS)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--service", default=WATCH_SERVICE, help="name reported in the status directory")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("status", help="which live consumer runs which version")
    p.add_argument("file", nargs="?", help="the prompts file (default PROMPTS_PATH)")
    p.add_argument("--status-dir", help="default PROMPTS_STATUS_DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("labels", help="every label, its sha256, size, modified time and consumers")
    p.add_argument("file", nargs="?", help="the production prompts file (default PROMPTS_PATH)")
    p.add_argument("--status-dir", help="default PROMPTS_STATUS_DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_labels)

    p = sub.add_parser("promote", help="write label SRC's exact bytes as label DST")
    p.add_argument("src", metavar="SRC", help="the label to copy (e.g. staging)")
    p.add_argument("dst", metavar="DST", help="the label to replace (e.g. production)")
    p.add_argument("--if-match", metavar="SHA256", help="write only if DST still has this sha256")
    p.add_argument("--prompts", metavar="PATH", help="the production prompts file (default PROMPTS_PATH)")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("sync", help="run this host's Redis agent (PROMPTS_REDIS_URL): Redis <-> local files")
    p.add_argument("file", nargs="?", help="the prompts file (default PROMPTS_PATH)")
    p.add_argument("--once", action="store_true", help="one reconciliation, then exit 0 (agreed) or 1")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("config", help="the effective settings of the whole stack (like nginx -T)")
    p.add_argument("--json", action="store_true", help="one object, keyed by environment variable")
    p.add_argument("--check", action="store_true", help="validate the stack; exit 1 naming every problem")
    p.set_defaults(func=cmd_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # <N> priority prefixes when stderr is the journal (a `promptwatch watch` unit), plain lines otherwise.
    quiet = args.command not in {"watch", "sync"} or getattr(args, "json", False)
    service = {"watch": getattr(args, "service", None), "sync": SYNC_SERVICE}.get(args.command) or "promptwatch"
    setup_logging(logging.WARNING if quiet else logging.INFO, stream=sys.stderr, service=service)
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except PromptwatchError as e:  # settings, or anything a command did not map itself
        _err(str(e))
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
