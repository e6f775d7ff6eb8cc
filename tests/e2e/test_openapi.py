"""GET /openapi.json: a valid OpenAPI 3.1 document that names every route the gateway serves.

The completeness test walks the router of a real `create_app()` app: a route
added without documenting it, or a documented path no longer served, fails
here naming the method and path. /review/ pages and HEAD are not API.
"""

from __future__ import annotations

import re

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from gateway.config.model import Config
from gateway.web.app import create_app
from gateway.web.routes.openapi import UNDOCUMENTED_PREFIXES, add_openapi_route, openapi_document

METHODS = ("get", "put", "post", "delete", "patch", "options", "trace")


def app_with_openapi(config: Config) -> web.Application:
    """A create_app() app with /openapi.json, whether or not app.py wires it yet."""
    app = create_app(config)
    if not any(
        r.resource is not None and r.resource.canonical == "/openapi.json"
        for r in app.router.routes()
    ):
        add_openapi_route(app)
    return app


def shape(path: str) -> str:
    """A path template with its parameter names (and aiohttp regexes) erased."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def served(app: web.Application) -> set[tuple[str, str]]:
    routes: set[tuple[str, str]] = set()
    for route in app.router.routes():
        assert route.resource is not None
        path = route.resource.canonical
        if route.method == "HEAD" or any(
            path.startswith(p) or path == p.rstrip("/") for p in UNDOCUMENTED_PREFIXES
        ):
            continue
        methods = METHODS if route.method == "*" else (route.method.lower(),)
        routes.update((m.upper(), shape(path)) for m in methods)
    return routes


def documented() -> set[tuple[str, str]]:
    doc = openapi_document()
    return {
        (method.upper(), shape(path))
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


def test_document_is_valid_openapi_3_1() -> None:
    doc = openapi_document()
    assert doc["openapi"].startswith("3.1")
    validate(doc, cls=OpenAPIV31SpecValidator)


def test_every_route_is_documented_and_every_documented_path_served(config: Config) -> None:
    app = app_with_openapi(config)
    missing = sorted(served(app) - documented())
    stale = sorted(documented() - served(app))
    assert not missing, "routes missing from gateway/web/routes/openapi.py: " + ", ".join(
        f"{m} {p}" for m, p in missing
    )
    assert not stale, "documented in gateway/web/routes/openapi.py but not served: " + ", ".join(
        f"{m} {p}" for m, p in stale
    )


def test_every_error_response_is_a_problem_document() -> None:
    doc = openapi_document()
    responses = doc["components"]["responses"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                if "$ref" in response:
                    response = responses[response["$ref"].rsplit("/", 1)[1]]
                if status[0] not in "45" or (path, status) == ("/readyz", "503"):
                    continue
                content = response["content"]
                if status == "4XX":  # a partner's own answer, passed through
                    continue
                assert "application/problem+json" in content, f"{method} {path} {status}"
                assert content["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }


def test_secured_operations_document_401(config: Config) -> None:
    doc = openapi_document()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if op["security"]:
                assert "401" in op["responses"], f"{method} {path}"
            elif path.startswith("/v1/"):
                # Public: the log's keys, and the JSON-LD context of consent records.
                public = ("/v1/log/key", "/v1/log/keys", "/v1/contexts/consent.jsonld")
                assert path in public, f"{method} {path} has no security"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_served_document_is_the_document(tmp_config: Config) -> None:
    async with TestClient(TestServer(app_with_openapi(tmp_config))) as client:
        response = await client.get("/openapi.json")
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.json() == openapi_document()


@pytest.mark.parametrize(
    "act,says",
    [("approve", ("rejected", "already approved")), ("reject", ("already rejected", "approved"))],
)
def test_a_lawful_request_acts_409_says_which_states_refuse_it(act: str, says: tuple) -> None:
    # A rejected request answers approve and reject with a 409 (README "Lawful requests"):
    # the generic "a state that refuses this" told a client nothing it could act on.
    op = openapi_document()["paths"][f"/v1/legal-requests/{{request_id}}/{act}"]["post"]
    description = op["responses"]["409"]["description"]
    assert all(words in description for words in says), description
