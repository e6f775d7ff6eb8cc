"""The partner URL of one disclosure: `base_url` and the operation's path, its
{placeholders} filled from the minimized payload.

Built before the intent is logged (`gateway.disclosure.flow`), so a value that cannot
fill its placeholder is refused before anything leaves; `Outbound.deliver` sends to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import quote

from yarl import URL

from gateway.errors import InvalidRequestError
from gateway.partners.model import PLACEHOLDER, Operation, Partner

# Characters of a path template kept as written (RFC 3986 pchar and '/');
# anything else in the template is percent-encoded.
_TEMPLATE_SAFE: Final = "/:@!$&'()*+,;=%"


def build_url(partner: Partner, operation: Operation, path_values: Mapping[str, object]) -> URL:
    """`base_url` + the operation's path with each {placeholder} filled and fully percent-encoded.

    A value can never leave its path segment: `/`, `?`, `#`, `@` and `%` are
    all encoded, and a value that would make a `.`/`..` segment is refused. The
    result is checked to stay on the partner's scheme, host, port and base
    path. Raises InvalidRequestError naming the placeholder —
    never its value.
    """
    where = f"partner {partner.id} operation {operation.name}"

    def refuse(problem: str) -> InvalidRequestError:
        return InvalidRequestError(f"{where}: {problem}")

    pieces: list[str] = []
    position = 0
    for match in PLACEHOLDER.finditer(operation.path):
        pieces.append(quote(operation.path[position : match.start()], safe=_TEMPLATE_SAFE))
        name = match.group(1)
        if name not in path_values:
            raise refuse(
                f"path {operation.path} needs a value for {{{name}}}; the minimized payload "
                "has none (send that field)"
            )
        value = path_values[name]
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise refuse(f"{{{name}}} must be a string or an integer, got {type(value).__name__}")
        text = str(value)
        if text in ("", ".", ".."):
            raise refuse(f"{{{name}}} is empty or a dot segment; it must name one resource")
        pieces.append(quote(text, safe=""))
        position = match.end()
    pieces.append(quote(operation.path[position:], safe=_TEMPLATE_SAFE))
    path = "".join(pieces)
    if any(segment in (".", "..") for segment in path.split("/")):
        raise refuse("the filled path holds a '.' or '..' segment; placeholder values must not")

    base = URL(partner.base_url)
    url = URL(partner.base_url + path, encoded=True)
    base_path = base.raw_path.rstrip("/")
    if (
        (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port)
        or not url.raw_path.startswith(base_path + "/")
        or url.raw_query_string
        or url.raw_fragment
    ):
        # Unreachable with the encoding above; kept so a future change to it
        # cannot send personal data to another host unnoticed.
        raise refuse(f"the filled URL left {partner.base_url}; refusing to send")
    return url
