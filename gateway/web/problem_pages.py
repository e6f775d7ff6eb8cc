"""GET /problems/ and GET /problems/<code>: what each problem `type` means, on the gateway.

Every problem document's `type` is the relative reference `/problems/<code>`, so a
developer who meets one follows it here: the meaning, the usual causes, the fix, the
HTTP status and whether a retry can succeed — from gateway_client.problems, nothing
else. HTML by default (the review site's stylesheet, no script), JSON for a client
whose Accept prefers `application/json`. No authentication: the pages hold no data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import jinja2
from aiohttp import web
from markupsafe import Markup, escape

from gateway.errors import NotFoundError
from gateway.problem_catalog import CATALOGUE, PROBLEM_PATH, ProblemKind
from gateway.web.negotiation import prefers

__all__ = ["PROBLEM_ROUTES", "add_problem_routes", "kind_document", "prefers_json"]

TEMPLATES: Final = Path(__file__).with_name("templates")
PROBLEM_ROUTES: Final = frozenset({"problem_index", "problem_index_slash", "problem_page"})
"""Route names of these pages (they never read the disclosure log)."""

# The pages show only the catalogue's own text; no script, styles from the review site.
HTML_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "public, max-age=300",
    "Vary": "Accept",  # one URL, HTML or JSON: a cache must keep both apart
}
JSON_HEADERS: Final = {"Cache-Control": "public, max-age=300", "Vary": "Accept"}

_ENVIRONMENT: Final = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every template, whatever its name
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _code_spans(text: str) -> Markup:
    """The catalogue's `backticked` names as <code>, everything else escaped."""
    pieces = text.split("`")
    return Markup("").join(
        Markup("<code>{}</code>").format(piece) if odd else escape(piece)
        for odd, piece in ((i % 2 == 1, p) for i, p in enumerate(pieces))
    )


_ENVIRONMENT.filters["code_spans"] = _code_spans


def prefers_json(accept: str | None) -> bool:
    """True when Accept ranks application/json above text/html (HTML wins a tie)."""
    return prefers(accept, "application/json", over="text/html")


def kind_document(kind: ProblemKind) -> dict[str, Any]:
    """The JSON form of one catalogue entry."""
    return {
        "type": kind.type,
        "code": kind.code,
        "status": kind.status,
        "title": kind.title,
        "meaning": kind.meaning,
        "causes": list(kind.causes),
        "fix": kind.fix,
        "retry": kind.retry,
        "retry_after_s": kind.retry_after_s,
        "retry_after_when": kind.retry_after_when,
    }


def _json(value: object) -> web.Response:
    return web.Response(
        body=json.dumps(value, ensure_ascii=False).encode("utf-8"),
        content_type="application/json",
        headers=JSON_HEADERS,
    )


def _html(template: str, **values: Any) -> web.Response:
    text = _ENVIRONMENT.get_template(template).render(index=PROBLEM_PATH, **values)
    return web.Response(text=text, content_type="text/html", charset="utf-8", headers=HTML_HEADERS)


async def problem_index(request: web.Request) -> web.Response:
    kinds = list(CATALOGUE.values())
    if prefers_json(request.headers.get("Accept")):
        return _json(
            {
                "problems": [
                    {"type": k.type, "code": k.code, "status": k.status, "title": k.title}
                    for k in kinds
                ]
            }
        )
    return _html("problems.html", kinds=kinds)


async def problem_page(request: web.Request) -> web.Response:
    kind = CATALOGUE.get(request.match_info["code"])
    if kind is None:
        # The path is not echoed, as for any 404 of the gateway.
        raise NotFoundError(f"there is no problem code by this name; GET {PROBLEM_PATH} lists them")
    if prefers_json(request.headers.get("Accept")):
        return _json(kind_document(kind))
    return _html("problem.html", kind=kind)


def add_problem_routes(app: web.Application) -> None:
    """Serve GET /problems, /problems/ (every code) and /problems/{code} (one code)."""
    app.router.add_get(PROBLEM_PATH.rstrip("/"), problem_index, name="problem_index")
    app.router.add_get(PROBLEM_PATH, problem_index, name="problem_index_slash")
    app.router.add_get(PROBLEM_PATH + "{code}", problem_page, name="problem_page")
