"""`gateway …` commands run in process against a deployment's config.toml, as a test sees
them: the exit code and what they printed."""

from __future__ import annotations

import asyncio
import io
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from gateway.cli.main import main


def project_copy(project: Path, tmp_path: Path) -> Path:
    """A copy of the project directory `project` at tmp_path/project, without its var/."""
    copy = tmp_path / "project"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("var"))
    return copy


def run_cli(root: Path, *args: str) -> tuple[int, str, str]:
    """`gateway --config ROOT/config.toml ARGS…`: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["--config", str(root / "config.toml"), *args])
    return code, out.getvalue(), err.getvalue()


async def run_cli_in_thread(root: Path, *args: str) -> tuple[int, str]:
    """The same from a test's event loop (a command that runs its own loop needs a thread
    of its own): (exit code, stdout and stderr together)."""
    code, out, err = await asyncio.to_thread(run_cli, root, *args)
    return code, out + err


def legal_request_create(reference: str, person: str, *more: str) -> list[str]:
    """`legal-request create` arguments: the Police's court order `reference` for subject
    s-1's data at vientiane-police, registered by `person`."""
    return [
        *("legal-request", "create", "--authority", "Police", "--reference", reference),
        *("--instrument", "court order", "--subject", "s-1", "--partner", "vientiane-police"),
        *("--as", person, *more),
    ]
