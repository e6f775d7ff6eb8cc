"""`gateway partners tighten`: a partner file without the fields it declares but never
sends, as a patch (issue 19).

The record of processing (gateway.rights.ropa) says which declared fields no disclosure
carried; this module removes them from the file's *text* — comments, order and layout
stay as written — and gives the change as a unified diff (``git apply`` / ``patch -p1``
take it). Applied, ``gateway partners diff OLD NEW`` shows exactly those fields removed
(each one ``narrows``). The new text is read back with the TOML parser and must hold
exactly the operations' fields minus the removed ones, or nothing is proposed.

Both ways a partner file writes an operation's fields are edited: the inline table
``fields = { a = "keep", b = "year" }`` on one line, and a ``[operations.<name>.fields]``
table of ``name = "transform"`` lines.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping, Sequence
from typing import Final

from gateway.errors import ConfigError

__all__ = ["remove_fields", "tighten_patch"]

_HEADER: Final = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$")
_INLINE: Final = re.compile(r"^(\s*fields\s*=\s*\{)(.*)(\}\s*(#.*)?)$")
_ITEM: Final = re.compile(r'\s*("?)([A-Za-z0-9_-]+)\1\s*=\s*"([^"]*)"\s*')
_LINE_KEY: Final = re.compile(r'^\s*("?)([A-Za-z0-9_-]+)\1\s*=')


def _table(header: str) -> tuple[str, ...]:
    return tuple(part.strip().strip('"') for part in header.split("."))


def remove_fields(text: str, removals: Mapping[str, Sequence[str]], shown: str) -> str:
    """`text` (a partner file) without the fields `removals` names per operation.
    ConfigError (naming `shown`) when a field cannot be found where it is declared."""
    lines = text.splitlines(keepends=True)
    table: tuple[str, ...] = ()
    out: list[str] = []
    for line in lines:
        header = _HEADER.match(line)
        if header and not line.lstrip().startswith("[["):
            table = _table(header.group(1))
            out.append(line)
            continue
        if len(table) == 2 and table[0] == "operations" and table[1] in removals:
            inline = _INLINE.match(line.rstrip("\n"))
            if inline:
                out.append(_without(inline, removals[table[1]]) + _ending(line))
                continue
        if len(table) == 3 and table[0] == "operations" and table[2] == "fields":
            key = _LINE_KEY.match(line)
            if table[1] in removals and key and key.group(2) in removals[table[1]]:
                continue
        out.append(line)
    tightened = "".join(out)
    _check(text, tightened, removals, shown)
    return tightened


def _ending(line: str) -> str:
    return "\n" if line.endswith("\n") else ""


def _without(inline: re.Match[str], names: Sequence[str]) -> str:
    kept = [
        item
        for item in inline.group(2).split(",")
        if item.strip() and not ((m := _ITEM.fullmatch(item)) and m.group(2) in names)
    ]
    body = ",".join(kept).strip()
    return f"{inline.group(1)} {body} {inline.group(3)}"


def _fields(text: str, shown: str) -> dict[str, dict[str, str]]:
    try:
        operations = tomllib.loads(text).get("operations", {})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(shown, None, f"not valid TOML: {exc}") from None
    return {name: dict(op.get("fields", {})) for name, op in operations.items()}


def _check(before: str, after: str, removals: Mapping[str, Sequence[str]], shown: str) -> None:
    old, new = _fields(before, shown), _fields(after, shown)
    expected = {
        name: {f: t for f, t in fields.items() if f not in removals.get(name, ())}
        for name, fields in old.items()
    }
    if new != expected:
        missing = sorted(
            f"{name}.{f}"
            for name, fields in removals.items()
            for f in fields
            if f in new.get(name, {})
        )
        raise ConfigError(
            shown,
            None,
            "cannot remove the never-sent fields from the file's text "
            f"({', '.join(missing) or 'the result would differ'}); edit the file by hand",
        )


def tighten_patch(text: str, removals: Mapping[str, Sequence[str]], path: str) -> str:
    """The unified diff (``a/<path>`` → ``b/<path>``) removing `removals` from `text`;
    empty when there is nothing to remove."""
    if not any(removals.values()):
        return ""
    after = remove_fields(text, removals, path)
    return "".join(
        difflib.unified_diff(
            text.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
        )
    )
