"""`gateway init DIR`: a starter deployment folder that `gateway serve` runs as it is.

The starter files ship inside the package (gateway/templates/init/), so a `pip install`
of the wheel is all an operator needs: a commented config.toml (SQLite under var/), one
example partner pointing at a loopback sandbox, the keys `gateway keys generate` would
make, and var/. An existing config.toml is never overwritten without --force, and keys
are never replaced (generation only adds what is missing).
"""

from __future__ import annotations

import argparse
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from gateway.cli.support import EXIT_OK, Commands, UsageError, add_command
from gateway.crypto.generate import generate_missing

STARTER = ("templates", "init")
# Files that cannot carry their real name inside the package (setuptools skips dotfiles).
RENAMED = {"gitignore": ".gitignore"}


def register(commands: Commands) -> None:
    init = add_command(
        commands,
        "init",
        cmd_init,
        "write a starter deployment folder: config.toml, an example partner, keys, var/",
    )
    init.add_argument("dir", help="the folder to write (created if missing)")
    init.add_argument(
        "--force",
        action="store_true",
        help="rewrite the starter config.toml and example partner (keys are never replaced)",
    )


def starter_files() -> dict[Path, bytes]:
    """The starter files by their path inside the deployment folder."""
    root = resources.files("gateway")
    for part in STARTER:
        root = root / part
    found: dict[Path, bytes] = {}

    def walk(node: Traversable, at: Path) -> None:
        for child in node.iterdir():
            if child.name == "__pycache__":
                continue
            if child.is_dir():
                walk(child, at / child.name)
            else:
                found[at / RENAMED.get(child.name, child.name)] = child.read_bytes()

    walk(root, Path())
    return found


def init(target: Path, *, force: bool = False) -> list[Path]:
    """Write the starter folder at `target`; return what was created or rewritten."""
    config = target / "config.toml"
    if config.exists() and not force:
        raise UsageError(
            f"{config} exists; gateway init does not overwrite a deployment "
            "(--force rewrites the starter config.toml and example partner, keeps keys/)"
        )
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} exists and is not a folder")
    written: list[Path] = []
    for relative, content in sorted(starter_files().items()):
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    var = target / "var"
    var.mkdir(exist_ok=True)
    written.append(var)
    keys = target / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)  # private key material: the operator's account only
    written += generate_missing(keys, target / "partners", base_dir=target)
    return written


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.dir)
    written = init(target, force=args.force)
    for path in written:
        print(f"created {path}")
    print(
        f"next: cd {target} && gateway partners validate && gateway serve\n"
        "      (edit config.toml and partners/ first: the example partner is a loopback sandbox)"
    )
    return EXIT_OK
