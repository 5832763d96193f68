"""adminapi: the admin panel of the voice bot — prompts that show where each save went live, history and
rollback, the knowledge base and the call logs, as a FastAPI app with a web UI."""

from .main import create_app, main
from .settings import AdminSettings

__all__ = ["AdminSettings", "create_app", "main"]
