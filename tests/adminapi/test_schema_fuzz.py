"""Fuzz every documented operation (schemathesis): no 5xx, and every response is one the schema documents."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
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
            if operation.get("requestBody") or any(_breakable(p["schema"]) for p in operation.get("parameters", [])):
                out.append((method.upper(), path, GenerationMode.NEGATIVE))
    return out


def _breakable(schema: dict[str, object]) -> bool:
    """A parameter some value violates: typed other than string, or constrained (any string fits a bare one)."""
    if schema.get("type") not in (None, "string"):
        return True
    if "anyOf" in schema:
        return any(_breakable(s) for s in schema["anyOf"] if isinstance(s, dict) and s.get("type") != "null")
    return any(k in schema for k in ("pattern", "minLength", "maxLength", "format", "enum"))


ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]  # schemathesis' default for valid data
CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {
            # Unknown query parameters are ignored on purpose (cache busters, newer clients); the token is the
            # test's, and ignored_auth checks the same requests without it.
            "allow-extra-parameters": False,
            "with-security-parameters": False,
        },
        "operations": [  # (filters within one entry are alternatives: each entry names its operations)
            {
                # A well-formed ETag that is not the current one is a failed precondition: no schema can say which
                # sha256 is on disk right now.
                "include-name": ["PUT /api/prompts", "POST /api/prompts", "POST /api/prompts/rollback/{sha}"],
                "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "412"]}},
            },
            {
                # The same, and which values fit depends on the key in the path (a list only for `fillers`, not
                # blank for `system_prompt` and `greeting`), which a schema of the body cannot follow.
                "include-name": "PATCH /api/prompts/{key}",
                "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "412", "422"]}},
            },
            {
                # Without `name`, the uploaded part's file name is used, and the content must be UTF-8 text (valid
                # JSON for .json): OpenAPI constrains neither a part's file name nor its bytes.
                "include-name": "POST /api/kb",
                # Multipart sends every value as bytes: a "boolean" file is a file whose content is `true`, which
                # is a valid upload; so a type mutation of the body cannot be told from data.
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "400", "415"]},
                    "negative_data_rejection": {"enabled": False},
                },
            },
        ],
    }
)


@pytest.fixture
def api_schema(config_dir: Path, status_dir: Path, tmp_path: Path) -> Iterator[BaseSchema]:
    served = serve(make_settings(config_dir, status_dir, tmp_path))
    try:
        yield from_url(served.url + "/openapi.json", config=CONFIG)
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
