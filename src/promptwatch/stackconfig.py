"""The effective settings of the whole stack, like ``nginx -T``: ``promptwatch config [--json] [--check]``.

Each service registers its settings class under the ``promptwatch.settings`` entry-point group
(``pyproject.toml``); the core reads them without importing the services.  For every setting the
report gives its value, where it came from (the environment, which env file and line, or the
default) and which services read it; secrets are masked.  :func:`stack_problems` validates the
stack: each settings class lists what it needs in its ``problems()`` hook.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, SecretStr, ValidationError

from .settings import PromptsSettings, env_files, settings_error

__all__ = ["SettingReport", "StackReport", "load_stack", "mask", "service_settings_classes"]

MASK = "********"
_SECRET_NAME = re.compile(r"(token|password|secret|api_key)s?$", re.IGNORECASE)


def service_settings_classes() -> dict[str, type[PromptsSettings]]:
    """The settings class of each service of the stack, by service name (``promptwatch`` for the core)."""
    classes: dict[str, type[PromptsSettings]] = {"promptwatch": PromptsSettings}
    for ep in sorted(entry_points(group="promptwatch.settings"), key=lambda e: e.name):
        cls = ep.load()
        if isinstance(cls, type) and issubclass(cls, PromptsSettings):
            classes[ep.name] = cls
    return classes


def mask(name: str, value: Any) -> Any:
    """``value`` fit to print: secrets replaced by :data:`MASK`, a URL's password hidden."""
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, str) and value and _SECRET_NAME.search(name):
        return MASK
    if isinstance(value, str) and "://" in value:
        parts = urlsplit(value)
        if parts.password:
            netloc = f"{parts.username or ''}:{MASK}@{parts.hostname or ''}"
            if parts.port:
                netloc += f":{parts.port}"
            return urlunsplit(parts._replace(netloc=netloc))
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "value") and not isinstance(value, (int, float, str)):  # an Enum
        return value.value
    return value


def _env_file_lines(path: Path) -> dict[str, int]:
    """Variable name (upper case) → line number of its last assignment in an env file."""
    found: dict[str, int] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return found
    for number, line in enumerate(text.splitlines(), 1):
        m = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", line)
        if m:
            found[m.group(1).upper()] = number
    return found


def _origin(env_name: str, files: Iterable[tuple[Path, dict[str, int]]]) -> str:
    if any(k.upper() == env_name for k in os.environ):
        return "environment"
    origin = "default"
    for path, lines in files:  # lowest precedence first: the last file naming it wins
        if env_name in lines:
            origin = f"{path}:{lines[env_name]}"
    return origin


@dataclass
class SettingReport:
    name: str
    """The environment variable."""
    value: Any
    source: str
    """``environment``, ``FILE:LINE`` of an env file, or ``default``."""
    services: list[str] = field(default_factory=list)


@dataclass
class StackReport:
    settings: dict[str, SettingReport]
    instances: dict[str, PromptsSettings]
    errors: list[str]
    """Settings that do not validate, one message per service, naming the variable."""
    env_files: list[Path]

    def problems(self) -> list[str]:
        """Every problem of the stack: invalid settings first, then each service's checks."""
        found = list(self.errors)
        seen: set[str] = set(found)
        for instance in self.instances.values():
            for problem in instance.problems():
                if problem not in seen:
                    seen.add(problem)
                    found.append(problem)
        return found

    def as_json(self) -> dict[str, Any]:
        return {
            name: {"value": r.value, "source": r.source, "services": r.services}
            for name, r in sorted(self.settings.items())
        }


def _field_value(instance: BaseModel, name: str) -> Any:
    return getattr(instance, name)


def load_stack() -> StackReport:
    """The effective settings of every service, from the environment and :func:`env_files`."""
    files = [p for p in env_files() if p.is_file()]
    file_lines = [(p, _env_file_lines(p)) for p in files]
    report: dict[str, SettingReport] = {}
    instances: dict[str, PromptsSettings] = {}
    errors: list[str] = []
    for service, cls in service_settings_classes().items():
        try:
            instance = cls.load()
        except ValidationError as e:
            message = f"{service}: {settings_error(e)}"
            if message not in errors:
                errors.append(message)
            continue
        instances[service] = instance
        for name in type(instance).model_fields:
            env_name = name.upper()
            entry = report.get(env_name)
            if entry is None:
                value = mask(name, _field_value(instance, name))
                entry = report[env_name] = SettingReport(env_name, value, _origin(env_name, file_lines))
            entry.services.append(service)
    return StackReport(report, instances, errors, files)
