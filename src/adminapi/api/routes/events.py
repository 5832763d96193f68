"""``/api/events``: the panel's changes pushed to the browser (Server-Sent Events), and who is logged in.

``EventSource`` cannot send the bearer token, so the browser first asks ``POST /api/events/ticket``
(with the token) for a single-use ticket valid for a few seconds and opens
``GET /api/events?ticket=…`` with it; every reconnection takes a new ticket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from promptwatch.labels import LABEL_PATTERN, PRODUCTION
from promptwatch.status import software_version

from ...consumers import consumer_views
from ...editor import PromptsEditor
from ...events import Event, EventHub, EventHubs, TicketBook, TooManyTickets, Topics
from ...label_editors import NoSuchLabel
from ...settings import AdminSettings
from ..deps import OperatorDep, get_label_editors, label_editor
from ..problems import AUTH_RESPONSES, ApiError, Code, responses
from ..schemas import ConsumerOut

__all__ = ["make_probe", "router"]

router = APIRouter(tags=["events"])

HEARTBEAT_SECONDS = 15.0


class TicketOut(BaseModel):
    ticket: str = Field(description="Pass as ?ticket= to GET /api/events within expires_in seconds; usable once")
    expires_in: float
    operator: str


class WhoAmI(BaseModel):
    operator: str = Field(description="The name of the token (the author recorded in the history)")
    version: str


def make_probe(get_editor: Any, settings: AdminSettings, label: str = PRODUCTION) -> Any:
    """The state the browser mirrors for ``label``: its version on disk (with who made it) and its consumers."""

    def probe() -> Topics:
        try:
            editor: PromptsEditor | None = get_editor()
        except NoSuchLabel:  # the label's file went away
            return {}
        if editor is None:
            return {}
        state = editor.read()
        latest = editor.history.latest()
        known = latest is not None and latest.sha256 == state.sha256
        prompts = {
            "label": label,
            "sha256": state.sha256,
            "valid": state.prompts is not None,
            "error": state.error,
            "author": latest.author if known and latest else None,
            "origin": latest.origin if known and latest else None,
        }
        views = consumer_views(settings.prompts_status_dir, editor.path, state.sha256)
        consumers = {
            "label": label,
            "sha256": state.sha256,
            "consumers": [ConsumerOut.of(v).model_dump(mode="json") for v in views],
        }
        return {"prompts": prompts, "consumers": consumers}

    return probe


@router.get("/api/whoami", summary="The operator the token belongs to", response_model=WhoAmI, responses=AUTH_RESPONSES)
async def whoami(operator: OperatorDep) -> WhoAmI:
    return WhoAmI(operator=operator.name, version=software_version())


@router.post(
    "/api/events/ticket",
    summary="A single-use ticket to open the event stream",
    response_model=TicketOut,
    responses={**AUTH_RESPONSES, **responses(429)},
)
async def ticket(request: Request, operator: OperatorDep) -> TicketOut:
    book: TicketBook = request.app.state.tickets
    try:
        issued = book.issue(operator.name)
    except TooManyTickets as e:
        raise ApiError(Code.TOO_MANY_TICKETS, str(e)) from None
    return TicketOut(ticket=issued, expires_in=book.ttl, operator=operator.name)


async def _stream(hub: EventHub, first: list[Event]) -> AsyncIterator[bytes]:
    async with hub.subscribe() as queue:
        yield b"retry: 2000\n\n"
        for initial in first:
            yield initial.encode()
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                yield b": ping\n\n"
                continue
            if event is None:
                return
            yield event.encode()


@router.get(
    "/api/events",
    summary="Changes as Server-Sent Events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "text/event-stream: `prompts` (sha256, valid, error, author, origin) and `consumers`",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **responses(401, 503),
    },
)
async def events(
    request: Request,
    ticket: Annotated[str, Query(max_length=100, description="From POST /api/events/ticket")],
    label: Annotated[
        str, Query(pattern=f"^{LABEL_PATTERN}$", description="Whose changes: a prompts label (default production)")
    ] = PRODUCTION,
) -> StreamingResponse:
    book: TicketBook = request.app.state.tickets
    if book.redeem(ticket) is None:
        raise ApiError(Code.TICKET_INVALID, "the ticket is unknown, used or expired: ask POST /api/events/ticket")
    if label != PRODUCTION:
        await label_editor(await get_label_editors(request), label)  # 404 for a label without a file
    hubs: EventHubs = request.app.state.events
    hub = hubs.get(label)
    if hub.closed:
        raise ApiError(Code.NOT_READY, "the panel is stopping")
    if hub.subscribers >= hub.max_subscribers:
        raise ApiError(Code.TOO_MANY_STREAMS, "too many event streams are open")
    first = await hub.current()
    return StreamingResponse(
        _stream(hub, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
