"""Several hosts: Redis carries every save to every host; each host's file stays its last known good.

``promptwatch sync`` runs :class:`SyncAgent`; :func:`open_agent` builds it from the settings.
"""

from .agent import SyncAgent
from .connect import RedisTarget, RedisUrlError, async_client, client, parse_url, redact
from .documents import MAIN, Document, DocumentSet
from .factory import open_agent
from .hosts import HostView, read_hosts, read_hosts_async, read_local_agent
from .state import SyncState
from .store import Keys, SyncStore

__all__ = [
    "MAIN",
    "Document",
    "DocumentSet",
    "HostView",
    "Keys",
    "RedisTarget",
    "RedisUrlError",
    "SyncAgent",
    "SyncState",
    "SyncStore",
    "async_client",
    "client",
    "open_agent",
    "parse_url",
    "read_hosts",
    "read_hosts_async",
    "read_local_agent",
    "redact",
]
