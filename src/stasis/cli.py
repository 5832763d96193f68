"""The ``stasis`` command: ``stasis run`` (the ARI service) and ``stasis console``.

Exit codes: 0 success; 1 unusable configuration or prompts at startup; 2 usage error;
3 ARI credentials rejected (no point restarting until they are fixed).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from promptwatch.errors import PromptwatchError
from promptwatch.logs import setup_logging
from promptwatch.settings import settings_error

from .errors import StasisError
from .settings import StasisSettings

__all__ = ["main"]

EXIT_CONFIG = 1


def _err(message: str) -> None:
    print(f"stasis: {message}", file=sys.stderr)


def _settings(env_file: str | None) -> StasisSettings:
    if env_file is not None:
        return StasisSettings(_env_file=env_file)  # type: ignore[call-arg]
    return StasisSettings.load()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stasis", description="The Asterisk ARI voice bot on hot-reloaded prompts.")
    parser.add_argument(
        "--env-file",
        help="settings file (default: $PROMPTWATCH_ENV_FILE, else var/.env and .env in the working directory)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the ARI service (systemd Type=notify)")
    sub.add_parser("console", help="talk to the bot in the terminal (stdin may be piped)")
    args = parser.parse_args(argv)
    if args.env_file is not None and not os.path.isfile(args.env_file):
        _err(f"{args.env_file}: no such settings file")
        return 2
    try:
        settings = _settings(args.env_file)
    except ValidationError as e:
        _err(str(settings_error(e)))
        return EXIT_CONFIG
    if args.command == "console":
        setup_logging(os.environ.get("LOG_LEVEL", "WARNING"), service=f"{settings.service_name}-console")
    else:
        setup_logging(service=settings.service_name)
    for noisy in ("httpx", "httpcore", "websockets"):  # one line per request would drown the call events
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        if args.command == "run":
            from .service import StasisService

            return asyncio.run(StasisService(settings).run())
        from .console import run_console

        return asyncio.run(run_console(settings))
    except (PromptwatchError, StasisError, OSError) as e:
        _err(str(e))
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
