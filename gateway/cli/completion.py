"""`gateway completion bash|zsh|tcsh`: a completion script generated from the parser tree.

shtab walks the `gateway` argparse parser (every sub-command, its options, the
choices of options that have them) and writes the script, so it never goes stale
against the CLI: regenerate it after an upgrade.

    gateway completion bash > ~/.local/share/bash-completion/completions/gateway
    gateway completion zsh > "${fpath[1]}/_gateway"
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Final

import shtab

from gateway.cli.support import EXIT_OK, Commands, add_command

SHELLS: Final = tuple(shtab.SUPPORTED_SHELLS)
# Values of these options and positionals are files; other free values get no suggestion.
_FILE_DESTS: Final = frozenset({"config", "file", "output", "key_file", "dir", "pid_file"})


def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """`parser` and every sub-command parser under it, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from parsers(sub)


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script of `parser.prog` for `shell` (one of SHELLS)."""
    for each in parsers(parser):
        for action in each._actions:
            if action.dest in _FILE_DESTS:
                action.complete = shtab.FILE  # type: ignore[attr-defined]  # shtab's hook
    return shtab.complete(parser, shell=shell)


def cmd_completion(args: argparse.Namespace) -> int:
    from gateway.cli.main import build_parser  # the whole tree, this command included

    print(completion_script(build_parser(), args.shell), end="")
    return EXIT_OK


def register(commands: Commands) -> None:
    """Add `completion` to the `gateway` parser."""
    completion = add_command(
        commands,
        "completion",
        cmd_completion,
        "print a shell completion script: gateway completion bash > "
        "~/.local/share/bash-completion/completions/gateway",
    )
    completion.add_argument("shell", choices=SHELLS)
