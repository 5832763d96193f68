"""Fuzz every documented operation (schemathesis): no 5xx, and every response is one the schema documents."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.openapi import from_url
from schemathesis.schemas import BaseSchema

from adminapi import AdminSettings, create_app

from .conftest import TOKEN, make_settings, serve, stop


def _operations() -> list[tuple[str, str, GenerationMode]]:
    """Every operation in positive mode; in negative mode those that take any input to break."""
    app = create_app(AdminSettings(_env_file=None, admin_token="x" * 32))  # type: ignore[call-arg]
    out: list[tuple[str, str, GenerationMode]] = []
    for path, methods in app.openapi()["paths"].items():
        for method, operation in methods.items():
            out.append((method.upper(), path, GenerationMode.POSITIVE))
            if operation.get("parameters") or operation.get("requestBody"):
                out.append((method.upper(), path, GenerationMode.NEGATIVE))
    return out


@pytest.fixture
def api_schema(config_dir: Path, status_dir: Path, tmp_path: Path) -> Iterator[BaseSchema]:
    served = serve(make_settings(config_dir, status_dir, tmp_path))
    try:
        yield from_url(served.url + "/openapi.json")
    finally:
        stop(served)


@pytest.mark.parametrize(("method", "path", "mode"), _operations(), ids=lambda v: str(getattr(v, "value", v)))
def test_fuzz_documented_operation(api_schema: BaseSchema, method: str, path: str, mode: GenerationMode) -> None:
    """Valid data (positive) and data that breaks the schema (negative): no 5xx, only documented answers."""
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=int(os.environ.get("ADMINAPI_FUZZ_EXAMPLES", "30")),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)  # every check

    fuzz()
