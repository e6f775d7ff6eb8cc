"""README.md's guides run as written.

Every command of every ```sh block is executed, in README order, by bash in a copy
of the project (config, partners, freshly generated keys) with `gateway serve`
running on a free port and the sandbox partners on theirs; each must exit 0. curl
runs with `--fail-with-body` (through CURL_HOME), so an HTTP error fails too. The
port 8080 of the commands becomes the gateway's free port; `.venv/bin/…` and bare
`gateway` both resolve to this checkout's virtualenv.

A command the tests cannot run (it serves forever, or runs this very suite) says
so in a trailing comment: `# … not run in tests: <reason>`. The ```json block of
the onboarding guide is fed to `gateway decide`, which must allow it.
"""

from __future__ import annotations

import asyncio
import functools
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from gateway.crypto import GatewayKeys
from gateway.partners import load_partners
from gateway.sandbox import start_sandboxes

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
VENV_BIN = Path(sys.executable).parent
SKIP_MARK = re.compile(r"#.*\bnot run in tests:\s*(?P<reason>.+)$", re.MULTILINE)
FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```\s*$", re.MULTILINE | re.DOTALL)
README_PORT = 8080


@dataclass(frozen=True)
class Command:
    line: int  # README line of the command's first line
    text: str
    skip: str | None  # the reason, when marked `not run in tests`


def fenced(text: str, lang: str) -> list[tuple[int, str]]:
    """(line of the first body line, body) of every fenced block in `lang`."""
    return [
        (text.count("\n", 0, m.start("body")) + 1, m.group("body"))
        for m in FENCE.finditer(text)
        if m.group("lang") == lang
    ]


def complete(script: str) -> bool:
    """Whether bash parses `script` as whole commands (no open quote, `\\`, `$(`…)."""
    if script.endswith("\\"):  # bash -n accepts a continuation at the end of its input
        return False
    return subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True,
                          check=False).returncode == 0


def commands(first_line: int, block: str) -> list[Command]:
    """The commands of a block: lines are joined until bash parses them whole, so
    continuation lines and quoted JSON spanning lines stay one command."""
    found: list[Command] = []
    pending: list[str] = []
    start = first_line
    for number, line in enumerate(block.splitlines(), start=first_line):
        if not pending:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            start = number
        pending.append(line)
        text = "\n".join(pending)
        if complete(text):
            mark = SKIP_MARK.search(text)
            found.append(Command(start, text, mark.group("reason").strip() if mark else None))
            pending = []
    assert not pending, f"README.md:{start}: a command that bash cannot parse"
    return found


@functools.cache
def guide_commands() -> list[list[Command]]:
    text = README.read_text(encoding="utf-8")
    return [commands(line, body) for line, body in fenced(text, "sh")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the project copy, the sandboxes and the gateway ----------------------------------------


@dataclass
class Stage:
    root: Path
    port: int
    env: dict[str, str]


@pytest.fixture
async def stage(project: Path, tmp_path: Path) -> AsyncIterator[Stage]:
    root = tmp_path / "clone"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("var"))
    (root / ".venv").symlink_to(VENV_BIN.parent)
    for file in (root / "partners").glob("*.toml"):
        text = re.sub(r"127\.0\.0\.1:91\d\d", f"127.0.0.1:{free_port()}", file.read_text())
        file.write_text(text)
    port = free_port()
    config = root / "config.toml"
    config.write_text(config.read_text().replace(f"port = {README_PORT}", f"port = {port}"))
    curl_home = tmp_path / "curl"
    curl_home.mkdir()
    # An HTTP error must fail the command, as a reader would notice it; the body still shows.
    (curl_home / ".curlrc").write_text("fail-with-body\nmax-time = 60\n")
    env = {
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CURL_HOME": str(curl_home),
        "LANG": "C.UTF-8",
    }
    keys = root / "keys"
    partners = load_partners(root / "partners", root)
    cluster = await start_sandboxes(partners, keys, GatewayKeys.load(keys).jwks(), {})
    server = await asyncio.create_subprocess_exec(
        str(VENV_BIN / "gateway"), "serve", "--port", str(port), cwd=root, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        await ready(f"http://127.0.0.1:{port}/readyz", server)
        yield Stage(root, port, env)
    finally:
        if server.returncode is None:
            server.terminate()
            try:
                await asyncio.wait_for(server.wait(), 15)
            except TimeoutError:
                server.kill()
                await server.wait()
        await cluster.close()


async def ready(url: str, server: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if server.returncode is not None:
                assert server.stderr is not None
                err = (await server.stderr.read()).decode(errors="replace")
                pytest.fail(f"gateway serve exited {server.returncode}: {err[-2000:]}")
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail(f"the gateway did not get ready at {url} within 30 s")


# -- running a block ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    command: Command
    status: int
    output: str


async def run_block(block: list[Command], stage: Stage, workdir: Path) -> list[Ran]:
    """One bash for the block (variables such as $TOKEN carry over), each command's
    status and output recorded separately."""
    lines = []
    runnable = [c for c in block if c.skip is None]
    for n, command in enumerate(runnable):
        text = command.text.replace(f":{README_PORT}", f":{stage.port}")
        lines += [f"{{\n{text}\n}} >{workdir}/{n}.out 2>&1 </dev/null",
                  f"echo $? >{workdir}/{n}.status"]
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", "\n".join(lines), cwd=stage.root, env=stage.env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 240)
    ran = []
    for n, command in enumerate(runnable):
        status_file = workdir / f"{n}.status"
        status = int(status_file.read_text()) if status_file.exists() else -1
        output = (workdir / f"{n}.out").read_text(errors="replace") if status != -1 else ""
        ran.append(Ran(command, status, output or err.decode(errors="replace")))
    return ran


# -- the tests -----------------------------------------------------------------------------------


def test_commands_are_found_and_skips_give_a_reason():
    blocks = guide_commands()
    assert len(blocks) >= 4
    every = [c for block in blocks for c in block]
    assert any(c.text.startswith("curl") for c in every)
    assert any(c.text.startswith("gateway log verify") for c in every)
    skipped = [c for c in every if c.skip is not None]
    assert all(len(c.skip or "") > 10 for c in skipped), "say why a command is not run"
    assert len(skipped) <= 4, "the guides are meant to run; keep skipped commands few"
    background = [c for c in every if re.search(r"(?<!&)&\s*(#.*)?$", c.text) and not c.skip]
    assert not background, f"a background command would outlive the test: {background}"


async def test_readme_guides_run_as_written(stage: Stage, tmp_path: Path):
    failures = []
    for number, block in enumerate(guide_commands()):
        workdir = tmp_path / f"block-{number}"
        workdir.mkdir()
        for ran in await run_block(block, stage, workdir):
            if ran.status != 0:
                failures.append(f"README.md:{ran.command.line}: exit {ran.status}\n"
                                f"$ {ran.command.text}\n{ran.output[-1500:]}")
    assert not failures, "\n\n".join(failures)
    await decision_example_is_allowed(stage)


async def decision_example_is_allowed(stage: Stage) -> None:
    """The onboarding guide's ```json body, run through `gateway decide`, is allowed."""
    [example] = [body for _, body in fenced(README.read_text(encoding="utf-8"), "json")
                 if '"facts"' in body]
    (stage.root / "body.json").write_text(example)
    process = await asyncio.create_subprocess_exec(
        "gateway", "decide", "body.json", cwd=stage.root, env=stage.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, (out + err).decode()
    assert '"allowed": true' in out.decode()
