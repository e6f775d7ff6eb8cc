"""README.md's guides run as written, the way a newcomer meets them.

The stage is what a new user has after the quick start: a fresh copy of the repository (the
files git tracks, and new files it does not ignore: no keys, no var/), and `make run`
serving in another terminal. Then every command of every ```sh block runs, in README order,
in one fresh bash at the root of that copy — with the PATH of a plain shell (no virtualenv on
it: a guide that wants `gateway` must say how it gets on PATH) and no service started that
the README does not start itself. Each command must exit 0; curl runs with
`--fail-with-body` (through CURL_HOME), so an HTTP error fails too, as a reader would notice.

Two things differ from a person's machine, so that the suite can run beside anything else:
the ports. `make run` gets `GATEWAY_SERVER_PORT` (the README's `:8080` becomes that port in
the commands), and the sandbox partners' loopback ports 9101–9108 in the copy's partner files
become free ones. `.venv` is this suite's virtualenv (a symlink; make is told not to rebuild
it), so the copy is not installed a second time.

A command the tests cannot run (it serves forever, or runs this very suite) says so in a
trailing comment: `# … not run in tests: <reason>`. The ```json block of the onboarding guide
is fed to `gateway decide`, which must allow it.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
VENV = Path(sys.executable).parent.parent
SKIP_MARK = re.compile(r"#.*\bnot run in tests:\s*(?P<reason>.+)$", re.MULTILINE)
FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```\s*$", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^(?P<level>#{2,3}) (?P<title>.+)$", re.MULTILINE)
README_PORT = 8080
SANDBOX_PORT = re.compile(r"127\.0\.0\.1:91\d\d")
# What a plain shell has on PATH: no virtualenv, nothing this suite installed by hand.
PLAIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Command:
    line: int  # README line of the command's first line
    text: str
    skip: str | None  # the reason, when marked `not run in tests`
    section: str  # the `## …` heading the command stands under


def fenced(text: str, lang: str) -> list[tuple[int, str]]:
    """(line of the first body line, body) of every fenced block in `lang`."""
    return [
        (text.count("\n", 0, m.start("body")) + 1, m.group("body"))
        for m in FENCE.finditer(text)
        if m.group("lang") == lang
    ]


def section_at(text: str, line: int) -> str:
    """The `## ` heading above README line `line`."""
    title = ""
    for m in HEADING.finditer(text):
        if text.count("\n", 0, m.start()) + 1 > line:
            break
        if m.group("level") == "##":
            title = m.group("title").strip()
    return title


def complete(script: str) -> bool:
    """Whether bash parses `script` as whole commands (no open quote, `\\`, `$(`…)."""
    if script.endswith("\\"):  # bash -n accepts a continuation at the end of its input
        return False
    return (
        subprocess.run(
            ["bash", "-n"], input=script, text=True, capture_output=True, check=False
        ).returncode
        == 0
    )


def commands(first_line: int, block: str, section: str) -> list[Command]:
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
            found.append(
                Command(start, text, mark.group("reason").strip() if mark else None, section)
            )
            pending = []
    assert not pending, f"README.md:{start}: a command that bash cannot parse"
    return found


@functools.cache
def guide_commands() -> list[list[Command]]:
    text = README.read_text(encoding="utf-8")
    return [commands(line, body, section_at(text, line)) for line, body in fenced(text, "sh")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the fresh copy and `make run` ------------------------------------------------------------


def fresh_copy(target: Path) -> Path:
    """What a clone holds: tracked files and new ones git does not ignore (never keys/, var/)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@dataclass
class Stage:
    root: Path
    port: int
    env: dict[str, str]
    log: Path


def wait_ready(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"`make run` exited {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(f"`make run` did not serve {url} within 90 s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    root = fresh_copy(tmp_path / "clone")
    (root / ".venv").symlink_to(VENV)
    for file in (root / "partners").glob("*.toml"):
        file.write_text(SANDBOX_PORT.sub(lambda _: f"127.0.0.1:{free_port()}", file.read_text()))
    port = free_port()
    curl_home = tmp_path / "curl"
    curl_home.mkdir()
    (curl_home / ".curlrc").write_text("fail-with-body\nmax-time = 60\n")
    env = {
        "PATH": PLAIN_PATH,
        "HOME": str(tmp_path),
        "CURL_HOME": str(curl_home),
        "LANG": "C.UTF-8",
    }
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        # make must not reinstall into the suite's virtualenv from the copy (-o: keep as is).
        server = subprocess.Popen(
            ["make", "-o", ".venv/bin/python", "-o", ".venv/.installed", "run"],
            cwd=root,
            env={**env, "GATEWAY_SERVER_PORT": str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", server, log)
        yield Stage(root, port, env, log)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


# -- running the guides --------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    command: Command
    status: int
    output: str


def run_guides(blocks: list[list[Command]], stage: Stage, workdir: Path) -> list[Ran]:
    """One bash for the whole README, as one terminal a reader pastes into: each command's
    status and output recorded separately."""
    runnable = [c for block in blocks for c in block if c.skip is None]
    lines = []
    for n, command in enumerate(runnable):
        text = command.text.replace(f":{README_PORT}", f":{stage.port}")
        lines += [
            f"{{\n{text}\n}} >{workdir}/{n}.out 2>&1 </dev/null",
            f"echo $? >{workdir}/{n}.status",
        ]
    process = subprocess.run(
        ["bash", "-c", "\n".join(lines)],
        cwd=stage.root,
        env=stage.env,
        capture_output=True,
        timeout=400,
        check=False,
    )
    ran = []
    for n, command in enumerate(runnable):
        status_file = workdir / f"{n}.status"
        status = int(status_file.read_text()) if status_file.exists() else -1
        output = (workdir / f"{n}.out").read_text(errors="replace") if status != -1 else ""
        ran.append(Ran(command, status, output or process.stderr.decode(errors="replace")))
    return ran


def http_status(output: str) -> int | None:
    """The status of the last HTTP response `curl -i` printed."""
    found = re.findall(r"^HTTP/[\d.]+ (\d{3})", output, re.MULTILINE)
    return int(found[-1]) if found else None


# -- the tests -----------------------------------------------------------------------------------


def test_commands_are_found_and_skips_give_a_reason() -> None:
    blocks = guide_commands()
    assert len(blocks) >= 4
    every = [c for block in blocks for c in block]
    assert any(c.text.startswith("curl") for c in every)
    assert any("gateway log verify" in c.text for c in every)
    skipped = [c for c in every if c.skip is not None]
    assert all(len(c.skip or "") > 10 for c in skipped), "say why a command is not run"
    assert len(skipped) <= 3, "the guides are meant to run; keep skipped commands few"
    background = [c for c in every if re.search(r"(?<!&)&\s*(#.*)?$", c.text) and not c.skip]
    assert not background, f"a background command would outlive the test: {background}"


def test_every_guide_says_how_gateway_gets_on_path() -> None:
    """A guide's first block that calls `gateway` puts it on PATH first (or names
    .venv/bin/gateway): a newcomer's shell has no virtualenv active."""
    seen: set[str] = set()
    for block in guide_commands():
        for command in block:
            if command.section in seen or command.skip:
                continue
            if "activate" in command.text:
                seen.add(command.section)
                continue
            bare = re.search(r"(^|[\s($|`])gateway\s", command.text)
            assert not bare, (
                f"README.md:{command.line}: `gateway` is called in '{command.section}' before "
                "the guide says how it gets on PATH (`. .venv/bin/activate` or .venv/bin/gateway)"
            )


def test_the_service_engineer_guide_ends_with_a_curl_i() -> None:
    guide = [b for b in guide_commands() if b and b[0].section.startswith("For a service engineer")]
    assert guide, "README.md has no '## For a service engineer' guide with a ```sh block"
    assert guide[0][-1].text.startswith("curl -i"), guide[0][-1].text


def test_readme_guides_run_as_written(stage: Stage, tmp_path: Path) -> None:
    blocks = guide_commands()
    workdir = tmp_path / "ran"
    workdir.mkdir()
    ran = run_guides(blocks, stage, workdir)
    failures = [
        f"README.md:{r.command.line}: exit {r.status}\n$ {r.command.text}\n{r.output[-1500:]}"
        for r in ran
        if r.status != 0
    ]
    assert not failures, "\n\n".join(failures) + f"\n\nmake run:\n{stage.log.read_text()[-2000:]}"
    guides = [b for b in blocks if b and b[0].section.startswith("For a service engineer")]
    first_block = guides[0]
    engineer = [r for r in ran if r.command in first_block]
    assert engineer, "the service engineer's guide ran no command"
    status = http_status(engineer[-1].output)
    assert status is not None and 200 <= status < 300, (
        f"README.md:{engineer[-1].command.line}: the service engineer's disclosure answered "
        f"{status}, not a 2xx:\n{engineer[-1].output[-1500:]}"
    )
    decision_example_is_allowed(stage)


def decision_example_is_allowed(stage: Stage) -> None:
    """The onboarding guide's ```json body, run through `gateway decide`, is allowed."""
    [example] = [
        body for _, body in fenced(README.read_text(encoding="utf-8"), "json") if '"facts"' in body
    ]
    (stage.root / "body.json").write_text(example)
    decided = subprocess.run(
        [str(stage.root / ".venv/bin/gateway"), "decide", "body.json"],
        cwd=stage.root,
        env=stage.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert decided.returncode == 0, decided.stdout + decided.stderr
    assert '"allowed": true' in decided.stdout
