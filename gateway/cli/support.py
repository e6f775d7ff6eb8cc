"""What every `gateway` sub-command module shares: registration, config, store, exit codes,
and the one `--format text|json|csv` option with the writer that prints records in it.

Each concern registers its own commands (`log.py` the disclosure log, `consent.py`
consents, `server.py` serve and the store, …; `main.py` only puts them together), so
the CLI grows by module, not by one ever-longer file.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO, TypeAlias, TypeVar

from gateway.config.model import Config, load_config
from gateway.store import Store
from gateway.store.protected import open_protected_store

if TYPE_CHECKING:
    from aiohttp import web

EXIT_OK, EXIT_FOUND, EXIT_USAGE = 0, 1, 2

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[[argparse.Namespace], int]
T = TypeVar("T")


class UsageError(Exception):
    """Bad arguments or input; exit 2."""


def add_command(under: Commands, name: str, handler: Handler, text: str) -> argparse.ArgumentParser:
    sub: argparse.ArgumentParser = under.add_parser(name, help=text, description=text)
    sub.set_defaults(handler=handler)
    return sub


def add_group(under: Commands, name: str, text: str) -> Commands:
    group: argparse.ArgumentParser = under.add_parser(name, help=text, description=text)
    return group.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)


def load(args: argparse.Namespace) -> Config:
    return load_config(Path(args.config))


def with_store(args: argparse.Namespace, work: Callable[[Store, Config], Awaitable[T]]) -> T:
    """Run `work` with the configured store open, and close it afterwards."""
    config = load(args)

    async def run() -> T:
        store = await open_protected_store(config.storage_url, config.root, config.keys_dir)
        try:
            return await work(store, config)
        finally:
            await store.close()

    return asyncio.run(run())


@asynccontextmanager
async def unserved_app(config: Config) -> AsyncIterator[web.Application]:
    """The gateway's application started without serving — its store, partners, keys, log
    and notice outbox — for a command whose act is a disclosure like any other (sealed,
    delivered with retries, logged); cleaned up on leaving."""
    from aiohttp import web

    from gateway.web.app import create_app  # the entry layer builds the app; lazily: heavy

    runner = web.AppRunner(create_app(config, serving=False), access_log=None)
    await runner.setup()
    try:
        yield runner.app
    finally:
        await runner.cleanup()


# -- printing records: one --format flag, one writer ---------------------------------------

OUTPUT_FORMATS: Final = ("text", "json", "csv")
# A cell a spreadsheet would run as a formula is quoted (CSV injection).
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")

Record = Mapping[str, Any]


def add_format_option(
    parser: argparse.ArgumentParser,
    *,
    default: str,
    old_json_flag: bool = False,
    old_names: Mapping[str, str] | None = None,
) -> None:
    """`--format text|json|csv`. `default` is what the command printed before the flag
    existed, so scripts keep working; `--json` (with `old_json_flag`) and the values of
    `old_names` (an earlier `--format jsonl`) stay accepted, hidden from the help."""
    renamed = dict(old_names or {})
    parser.add_argument(
        "--format",
        type=lambda value: renamed.get(value, value),
        choices=OUTPUT_FORMATS,
        default=default,
        help=f"output: text (for people), json or csv (default: {default})",
    )
    if old_json_flag:
        parser.add_argument(
            "--json", dest="format", action="store_const", const="json", help=argparse.SUPPRESS
        )


def cell(value: object) -> str:
    """A value as one CSV or table cell: '' for none, true/false, text as it is, anything
    else as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


class RecordWriter:
    """Writes records as a text table, JSON or CSV: the one renderer of every command
    that prints records.

    - json: the whole record; a JSON array (indented), or one object per line with
      `json_lines` (streams: a log export never sits in memory).
    - csv: a header of the `columns` keys, then one row per record (`flat` picks or
      computes the cells' values); cells that would start a formula are quoted.
    - text: `text_line` formats each record as a line (after `text_header`), streaming;
      without it, an aligned table of `columns` (titles as header) printed at `close`,
      its cells from `text_cells` (default: each column's value). `empty_text` is
      printed when there was no record.
    """

    def __init__(
        self,
        fmt: str,
        columns: Mapping[str, str],
        *,
        out: TextIO | None = None,
        json_lines: bool = False,
        flat: Callable[[Record], Record] | None = None,
        text_line: Callable[[Record], str] | None = None,
        text_header: str | None = None,
        text_cells: Callable[[Record], Sequence[str]] | None = None,
        empty_text: str | None = None,
    ) -> None:
        if fmt not in OUTPUT_FORMATS:
            raise UsageError(f"--format must be one of {', '.join(OUTPUT_FORMATS)}")
        self._fmt = fmt
        self._columns = columns
        self._out = out if out is not None else sys.stdout
        self._json_lines = json_lines
        self._flat = flat or (lambda record: record)
        self._text_line = text_line
        self._text_cells = text_cells or (
            lambda record: [cell(self._flat(record).get(key)) or "-" for key in self._columns]
        )
        self._empty_text = empty_text
        self._held: list[Record] = []
        self.count = 0
        if fmt == "csv":
            self._csv = csv.writer(self._out, lineterminator="\n")
            self._csv.writerow(list(columns))
        elif fmt == "text" and text_line is not None and text_header is not None:
            self._out.write(text_header + "\n")

    def write(self, record: Record) -> None:
        self.count += 1
        if self._fmt == "csv":
            values = self._flat(record)
            row = [cell(values.get(key)) for key in self._columns]
            self._csv.writerow(["'" + c if c.startswith(_FORMULA_START) else c for c in row])
        elif self._fmt == "json" and self._json_lines:
            self._out.write(json.dumps(record, sort_keys=True) + "\n")
        elif self._fmt == "text" and self._text_line is not None:
            self._out.write(self._text_line(record) + "\n")
        else:
            self._held.append(record)

    def write_all(self, records: Iterable[Record]) -> RecordWriter:
        for record in records:
            self.write(record)
        return self

    def close(self) -> None:
        if self._fmt == "json" and not self._json_lines:
            self._out.write(json.dumps(self._held, indent=2) + "\n")
        elif self._fmt == "text" and self._text_line is None and self._held:
            rows = [list(self._columns.values())]
            rows += [list(self._text_cells(record)) for record in self._held]
            widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
            for row in rows:
                padded = [text.ljust(widths[i]) for i, text in enumerate(row[:-1])]
                self._out.write("  ".join([*padded, row[-1]]) + "\n")
        if self._fmt == "text" and self.count == 0 and self._empty_text is not None:
            self._out.write(self._empty_text + "\n")
        self._held = []


def columns(*keys: str) -> dict[str, str]:
    """Columns whose text titles are their keys in capitals."""
    return {key: key.upper().replace("_", " ") for key in keys}
