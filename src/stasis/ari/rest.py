"""ARI REST requests over one httpx connection pool, with errors mapped to typed exceptions.

401 → :class:`AriAuthError`; 404 on a channel, playback or recording → :class:`ChannelGone` (the
call is over); no answer → :class:`AriUnavailable`; any other 4xx/5xx → :class:`AriError`.
"""

from __future__ import annotations

from typing import Any

import httpx

from ..errors import AriAuthError, AriError, AriUnavailable, ChannelGone

__all__ = ["AriRest"]


class AriRest:
    """``base_url`` is ARI_URL (``http://127.0.0.1:8088``); paths are below ``/ari``."""

    def __init__(
        self,
        base_url: str,
        user: str,
        password: str,
        *,
        timeout: float = 5.0,
        max_connections: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.base_url + "/ari",
            auth=httpx.BasicAuth(user, password),
            timeout=httpx.Timeout(timeout),
            # A small pool: ARI answers in about a millisecond, and httpcore checks every pooled
            # connection on each request, so a pool as large as the number of calls costs O(calls).
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
        )

    async def request(self, method: str, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        """Send one request; return the 2xx response or raise the typed error."""
        try:
            response = await self._client.request(method, path, params=params)
        except httpx.TransportError as e:
            raise AriUnavailable(method, path, 0, f"{type(e).__name__}: {e or 'no answer'}") from e
        if response.status_code < 400:
            return response
        try:
            message = str(response.json().get("message", response.text))
        except ValueError:
            message = response.text[:200] or response.reason_phrase
        if response.status_code == 401:
            raise AriAuthError(method, path, 401, message)
        if response.status_code == 404 and path.startswith(("/channels/", "/playbacks/", "/recordings/")):
            raise ChannelGone(method, path, 404, message)
        raise AriError(method, path, response.status_code, message)

    async def json(self, method: str, path: str, params: dict[str, str] | None = None) -> Any:
        response = await self.request(method, path, params)
        return response.json() if response.content else None

    # The handful of resources a call needs.

    async def info(self) -> Any:
        return await self.json("GET", "/asterisk/info")

    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/answer")

    async def hangup(self, channel_id: str, reason_code: int = 16) -> None:
        await self.request("DELETE", f"/channels/{channel_id}", {"reason_code": str(reason_code)})

    async def play(self, channel_id: str, media: str, playback_id: str) -> Any:
        return await self.json("POST", f"/channels/{channel_id}/play", {"media": media, "playbackId": playback_id})

    async def stop_playback(self, playback_id: str) -> None:
        await self.request("DELETE", f"/playbacks/{playback_id}")

    async def record(
        self, channel_id: str, name: str, *, max_seconds: int, max_silence: int, terminate_on: str = "#"
    ) -> Any:
        params = {
            "name": name,
            "format": "wav",
            "maxDurationSeconds": str(max_seconds),
            "maxSilenceSeconds": str(max_silence),
            "ifExists": "overwrite",
            "beep": "false",
            "terminateOn": terminate_on,
        }
        return await self.json("POST", f"/channels/{channel_id}/record", params)

    async def cancel_recording(self, name: str) -> None:
        """Stop a live recording and discard it (``DELETE /recordings/live/{name}``)."""
        await self.request("DELETE", f"/recordings/live/{name}")

    async def stored_recording(self, name: str) -> bytes:
        return (await self.request("GET", f"/recordings/stored/{name}/file")).content

    async def delete_stored_recording(self, name: str) -> None:
        await self.request("DELETE", f"/recordings/stored/{name}")

    async def continue_in_dialplan(self, channel_id: str, context: str, extension: str, priority: int) -> None:
        params = {"context": context, "extension": extension, "priority": str(priority)}
        await self.request("POST", f"/channels/{channel_id}/continue", params)

    async def aclose(self) -> None:
        await self._client.aclose()
