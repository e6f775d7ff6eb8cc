"""Read a TOML file and remember on which line each key stands.

`tomllib` gives values but no positions; the privacy team needs refusals
that say `partners/x.toml:14: …`. A light line scan maps every table header
and `key =` line to its dotted path, which is all an error message needs.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError

_HEADER = re.compile(r"^\s*(\[\[|\[)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
_BARE_OR_QUOTED = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEY = re.compile(rf"^\s*({_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*)\s*=")
_INLINE_KEY = re.compile(r"""[{,]\s*([A-Za-z0-9_-]+|"[^"]*"|'[^']*')\s*=""")
_LINE_IN_ERROR = re.compile(r"line (\d+)")

Path_ = tuple[str | int, ...]


def _split_key(text: str) -> tuple[str, ...]:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", text)
    return tuple(p.strip("\"'") for p in parts)


@dataclass
class TomlDocument:
    """Parsed TOML values plus the line of each key path."""

    path: str
    data: dict[str, Any]
    lines: dict[Path_, int] = field(default_factory=dict)
    # Key paths whose value came from elsewhere (an environment variable), and its name.
    overridden: dict[Path_, str] = field(default_factory=dict)

    def override(self, source: str, value: object, section: str, key: str) -> None:
        """Replace `section.key` with `value` from `source`; None removes it (its default)."""
        table = self.data.setdefault(section, {})
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
        self.overridden[(section, key)] = source

    def source(self, *key: str | int) -> str:
        """Where the value at `key` comes from: an override, `file:line`, or `default`."""
        for end in range(len(key), 0, -1):
            found = self.overridden.get(tuple(key[:end]))
            if found is not None:
                return found
        line = self.lines.get(tuple(key))
        return f"{self.path}:{line}" if line is not None else "default"

    def line(self, *key: str | int) -> int | None:
        """Line of the longest known prefix of `key` (a missing key points at its table)."""
        return line_of(self.lines, key)

    def error(self, message: str, *key: str | int) -> ConfigError:
        """A refusal located at the key's line, or at the variable that overrode it."""
        for end in range(len(key), 1, -1):
            source = self.overridden.get(tuple(key[:end]))
            if source is not None:
                return ConfigError(source, None, message)
        return ConfigError(self.path, self.line(*key), message)


def line_of(lines: Mapping[Path_, int], key: Path_) -> int | None:
    """Line of the longest prefix of `key` found in `lines` (a missing key points at its
    table's header); None when not even its first part is there."""
    for end in range(len(key), 0, -1):
        found = lines.get(key[:end])
        if found is not None:
            return found
    return None


def load(path: Path, display: str | None = None) -> TomlDocument:
    """Parse `path`; a syntax error becomes a ConfigError with its line."""
    shown = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(shown, None, f"cannot read file: {exc.__class__.__name__}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _LINE_IN_ERROR.search(str(exc))
        line = int(match.group(1)) if match else None
        raise ConfigError(shown, line, f"not valid TOML: {exc}") from exc
    return TomlDocument(shown, data, _locate(text))


def _locate(text: str) -> dict[Path_, int]:
    lines: dict[Path_, int] = {}
    table: Path_ = ()
    array_counts: dict[tuple[str, ...], int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(raw)
        if header:
            names = _split_key(header.group(2))
            if header.group(1) == "[[":
                index = array_counts.get(names, 0)
                array_counts[names] = index + 1
                table = (*names, index)
            else:
                table = names
            lines.setdefault(table, number)
            continue
        key = _KEY.match(raw)
        if key:
            full = (*table, *_split_key(key.group(1)))
            lines.setdefault(full, number)
            rest = raw[key.end() :]
            for inline in _INLINE_KEY.finditer(rest):
                lines.setdefault((*full, inline.group(1).strip("\"'")), number)
    return lines
