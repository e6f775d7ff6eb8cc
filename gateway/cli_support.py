"""What every `gateway` sub-command module shares: registration, config, store, exit codes.

Each concern registers its own commands (`cli.py` the core, `cli_log.py` the
disclosure log, `cli_review.py` legal review and subject rights), so the CLI
grows by module, not by one ever-longer file.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeAlias, TypeVar

from gateway.config import Config, load_config
from gateway.store import Store, open_store

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
        store = await open_store(config.storage_url, config.root)
        try:
            return await work(store, config)
        finally:
            await store.close()

    return asyncio.run(run())
