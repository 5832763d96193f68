"""Asterisk REST Interface: REST requests (httpx), the events WebSocket, and the client joining them."""

from .client import AriClient, Playback, Recording
from .events import EventStream
from .rest import AriRest

__all__ = ["AriClient", "AriRest", "EventStream", "Playback", "Recording"]
