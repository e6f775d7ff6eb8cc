"""`gateway completion bash`: the generated script completes the real parser tree in bash."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gateway.cli import build_parser
from gateway.cli_completion import bash_script, walk


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "gateway.bash"
    path.write_text(bash_script(build_parser()))
    return path


def complete(script: Path, line: str, cwd: Path | None = None) -> list[str]:
    """What bash offers for `line` (the last word is being completed; '' for a new word)."""
    words = line.split(" ")
    quoted = " ".join(f"'{w}'" for w in words)
    program = (f"source {script}; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; "
               "_gateway; printf '%s\\n' \"${COMPREPLY[@]}\"")
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True,
                          cwd=cwd)
    return [w for w in done.stdout.splitlines() if w]


def test_script_is_valid_bash(script: Path):
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert "complete -o filenames -F _gateway gateway" in script.read_text()


def test_every_command_of_the_parser_is_in_the_script(script: Path):
    text = script.read_text()
    for node in walk(build_parser()):
        for command in node.commands:
            assert command in text, command


def test_commands_subcommands_options_and_choices(script: Path, tmp_path: Path):
    assert "log" in complete(script, "gateway lo")
    assert complete(script, "gateway log ve") == ["verify", "verify-proof"]
    assert complete(script, "gateway --config other.toml log se") == ["search"]
    assert "--outcome" in complete(script, "gateway log search --")
    assert set(complete(script, "gateway log search --outcome ")) >= {"sent", "failed"}
    assert complete(script, "gateway log export --format c") == ["csv"]
    assert complete(script, "gateway log search --partner ") == []
    (tmp_path / "body.json").write_text("{}")
    assert complete(script, "gateway decide bo", cwd=tmp_path) == ["body.json"]
    assert complete(script, "gateway --config bo", cwd=tmp_path) == ["body.json"]
