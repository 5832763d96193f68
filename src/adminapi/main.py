"""The admin panel's app (:func:`create_app`) and its service entry point (:func:`main`, ``adminapi``).

Under systemd (``Type=notify``): ``READY=1`` once the socket accepts connections, a ``STATUS=`` line
kept current (prompts sha, consumers in sync), ``STOPPING=1`` on SIGTERM, which uvicorn turns into a
graceful stop (requests in flight finish, the watcher and databases are closed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from promptwatch import Prompts, PromptwatchError, StartupError
from promptwatch.labels import PRODUCTION
from promptwatch.logs import setup_logging
from promptwatch.settings import settings_error
from promptwatch.sync import RedisUrlError
from promptwatch.systemd import notify
from stasis.calllog import CallLog

from .api.guard import RequestGuard
from .api.limits import BodyCaps
from .api.problems import install_handlers
from .api.routes import calls, events, health, kb, labels, metrics, outcomes, playground, prompts, status
from .api.routes.events import make_probe
from .api.schemas import PATCH_ADAPTER
from .auth import load_tokens
from .cluster import Cluster
from .consumers import consumer_views, missing_services
from .editor import PromptsEditor
from .events import EventHub, EventHubs, TicketBook
from .history import HistoryStore
from .knowledge import KbStore
from .label_editors import LabelEditors
from .metrics import AdminMetrics
from .server import server_config
from .settings import AdminSettings

__all__ = ["PanelServer", "create_app", "main", "status_line"]

logger = logging.getLogger("adminapi")

STATIC_DIR = Path(__file__).parent / "static"
UI_PAGES = ("prompts", "history", "kb", "calls", "status", "playground", "outcomes")
"""The web UI's pages: ``/prompts``, ``/history/<sha>``, ``/calls/<id>``… all serve ``index.html``."""
DOCS_HEADERS = {
    "Cache-Control": "no-cache",
    # Swagger UI sets inline styles; its script is the packaged bundle and docs.js.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
UI_HEADERS = {
    "Cache-Control": "no-cache",
    # Only the panel's own script and style: an injected <script> cannot run, nor read the token.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _editor_of(app: FastAPI, label: str) -> Callable[[], PromptsEditor | None]:
    """The editor of ``label`` once the app runs (for the event stream's probe, in a worker thread)."""
    if label == PRODUCTION:
        return lambda: getattr(app.state, "editor", None)

    def label_editor() -> PromptsEditor | None:
        labels: LabelEditors | None = getattr(app.state, "labels", None)
        return labels.get(label) if labels is not None else None

    return label_editor


def status_line(app: FastAPI) -> str:
    """The one-line state for ``systemctl status``: the sha on disk and how many consumers run it."""
    editor: PromptsEditor | None = getattr(app.state, "editor", None)
    if editor is None:
        return "starting"
    settings: AdminSettings = app.state.settings
    state = editor.read()
    if state.sha256 is None:
        return f"no prompts file at {editor.path}"
    views = consumer_views(settings.prompts_status_dir, editor.path, state.sha256)
    in_sync = sum(v.in_sync for v in views)
    valid = "" if state.prompts is not None else " (INVALID on disk)"
    missing = missing_services(settings.expected_consumers, views)
    absent = f"; MISSING {', '.join(missing)}" if missing else ""
    return f"prompts sha={state.sha256[:12]}{valid}; consumers in sync {in_sync}/{len(views)}{absent}"


async def _status_loop(app: FastAPI, period: float = 1.0) -> None:
    last = ""
    while True:
        line = await run_in_threadpool(status_line, app)
        if line != last:
            notify(f"STATUS={line}")
            last = line
        await asyncio.sleep(period)


async def _repair_loop(editor: PromptsEditor, period: float = 1.0) -> None:
    """Retry a history that could not be written (a full state dir) until it is repaired from the disk."""
    while True:
        await asyncio.sleep(period)
        if editor.history_broken is not None:
            await run_in_threadpool(editor.repair_history)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: AdminSettings = app.state.settings
    history = await run_in_threadpool(HistoryStore, settings.history_path, retention=settings.admin_history_retention)
    cluster: Cluster | None = app.state.cluster
    editor = PromptsEditor(settings, history, cluster=cluster)
    await run_in_threadpool(editor.start)
    app.state.history = history
    app.state.editor = editor
    app.state.labels = LabelEditors(settings, editor)
    app.state.kb = KbStore(settings.knowledge_base_dir, max_bytes=settings.kb_max_bytes)
    app.state.calllog = await run_in_threadpool(lambda: CallLog(settings.calllog_path, readonly=True))
    app.state.agent = None
    app.state.agent_lock = asyncio.Lock()
    app.state.started_at = time.time()
    status_task = asyncio.create_task(_status_loop(app)) if notify_enabled() else None
    repair_task = asyncio.create_task(_repair_loop(editor))
    logger.info(
        "admin panel ready: prompts=%s kb=%s calls=%s", editor.path, settings.knowledge_base_dir, settings.calllog_path
    )
    try:
        yield
    finally:
        app.state.events.close()
        for task in (status_task, repair_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await playground.close_agent(app.state)
        app.state.editor = None
        app.state.calllog = None
        label_editors, app.state.labels = app.state.labels, None
        await run_in_threadpool(label_editors.close)
        await run_in_threadpool(editor.close)
        app.state.calllog = None
        history.close()
        if cluster is not None:
            await cluster.close()


def notify_enabled() -> bool:
    import os

    return bool(os.environ.get("NOTIFY_SOCKET"))


def _consumer_counts(app: FastAPI) -> tuple[int, int]:
    editor: PromptsEditor | None = getattr(app.state, "editor", None)
    if editor is None:
        return 0, 0
    settings: AdminSettings = app.state.settings
    views = consumer_views(settings.prompts_status_dir, editor.path, editor.read().sha256)
    in_sync = sum(v.in_sync for v in views)
    return in_sync, len(views) - in_sync


def _count_too_large(app: FastAPI, method: str, path: str) -> None:
    """A save refused for its size before it reached the route still counts as a failed save."""
    if path.startswith("/api/prompts") and method in ("PUT", "POST", "PATCH"):
        metrics: AdminMetrics = app.state.metrics
        metrics.save_failures.labels("too_large").inc()


def _problem_for_validation_errors(schema: dict[str, Any]) -> None:
    """Request validation errors are answered with :class:`Problem` (see ``install_handlers``): say so."""
    problem = {"$ref": "#/components/schemas/Problem"}
    for methods in schema.get("paths", {}).values():
        for operation in methods.values():
            response = operation.get("responses", {}).get("422")
            if response is not None:
                response["content"] = {"application/json": {"schema": problem}}
    for name in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(name, None)


def create_app(settings: AdminSettings | None = None) -> FastAPI:
    """The admin app.  Raises :class:`~promptwatch.StartupError` when the token settings are unusable."""
    settings = settings or AdminSettings.load()
    app = FastAPI(
        title="Metrotech admin panel",
        version="1.0",
        description="Prompts that show where each save went live, their history, the knowledge base and call logs.",
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.tickets = TicketBook()
    app.state.events = EventHubs(lambda label: EventHub(make_probe(_editor_of(app, label), settings, label)))
    app.state.tokens = load_tokens(settings)
    app.state.metrics = AdminMetrics(lambda: _consumer_counts(app))
    app.state.editor = None
    try:
        app.state.cluster = Cluster(settings) if settings.prompts_redis_url else None
    except RedisUrlError as e:
        raise StartupError(str(e)) from None
    install_handlers(app)
    app.add_middleware(
        RequestGuard,
        tokens=app.state.tokens,
        caps=BodyCaps(document_bytes=settings.prompts_max_bytes, kb_bytes=settings.kb_max_bytes),
        body_timeout=settings.admin_body_timeout,
        on_too_large=lambda method, path: _count_too_large(app, method, path),
    )
    for module in (health, prompts, labels, outcomes, status, kb, calls, playground, metrics, events):
        app.include_router(module.router)

    # The shared schema of the prompts document, referenced by the request bodies of PUT/POST.
    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original_openapi()
            components = schema.setdefault("components", {})
            schemas = components.setdefault("schemas", {})
            schemas.setdefault("Prompts", Prompts.model_json_schema(ref_template="#/components/schemas/{model}"))
            patch = PATCH_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(patch.pop("$defs", {}))
            schemas["PatchBody"] = patch
            _problem_for_validation_errors(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=UI_HEADERS)

    async def page(rest: str = "") -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=UI_HEADERS)

    for name in UI_PAGES:
        app.add_api_route(f"/{name}", page, include_in_schema=False)
        app.add_api_route(f"/{name}/{{rest:path}}", page, include_in_schema=False)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        """Swagger UI from the package itself (static/docs/): works without internet."""
        return FileResponse(STATIC_DIR / "docs" / "index.html", headers=DOCS_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


class PanelServer(uvicorn.Server):
    """uvicorn, telling systemd when it accepts connections and that it is stopping; open event streams
    are ended first, so a stop does not wait for browsers to go away."""

    def __init__(self, config: uvicorn.Config, *, on_ready: object = None) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and callable(self._on_ready):
            self._on_ready(self)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        notify("STOPPING=1")
        hubs = getattr(getattr(self.config.app, "state", None), "events", None)
        if isinstance(hubs, EventHubs):
            hubs.close()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGTERM/SIGINT only record the request to stop (the serve loop acts on it); the original
        handlers are restored afterwards and, unlike uvicorn's default, the signal is not re-raised,
        so a graceful stop exits with status 0."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


def _bound_url(server: uvicorn.Server, host: str) -> str:
    for srv in server.servers:
        for sock in srv.sockets:
            addr = sock.getsockname()
            shown = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
            return f"http://{shown}:{addr[1]}/"
    return f"http://{host}/"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="adminapi", description="The Metrotech admin panel (FastAPI + web UI).")
    parser.add_argument("--host", help="address to listen on (default ADMIN_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default ADMIN_PORT or 8000; 0 picks a free one)")
    args = parser.parse_args(argv)
    try:
        settings = AdminSettings.load()
    except ValidationError as e:
        print(f"adminapi: {settings_error(e)}", file=sys.stderr)
        return 1
    setup_logging(service=settings.admin_service_name)
    update: dict[str, object] = {}
    if args.host is not None:
        update["admin_host"] = args.host
    if args.port is not None:
        update["admin_port"] = args.port
    settings = settings.model_copy(update=update)
    try:
        app = create_app(settings)
    except PromptwatchError as e:
        print(f"adminapi: {e}", file=sys.stderr)
        return 1
    tokens = app.state.tokens

    def ready(server: uvicorn.Server) -> None:
        url = _bound_url(server, settings.admin_host)
        if tokens.generated_file is not None:
            # Only a prefix goes to the journal (readable by more people than the 0600 file).
            logger.warning("admin panel: %s  token: %s (generated; the whole token is in %s)", url, tokens.shown(),
                           tokens.generated_file)  # fmt: skip
        else:
            logger.info("admin panel: %s", url)
        notify(f"READY=1\nSTATUS=serving {url}; {status_line(app)}")

    server = PanelServer(server_config(app, settings), on_ready=ready)
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
