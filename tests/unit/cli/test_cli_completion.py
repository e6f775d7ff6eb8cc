"""`gateway completion bash|zsh`: the script shtab generates completes the real parser tree."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.cli.completion import completion_script, parsers
from gateway.cli.main import build_parser, main


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "gateway.bash"
    path.write_text(completion_script(build_parser(), "bash"))
    return path


def complete(script: Path, line: str, cwd: Path | None = None) -> list[str]:
    """What bash offers for `line` (the last word is being completed; '' for a new word)."""
    words = line.split(" ")
    quoted = " ".join(f"'{w}'" for w in words)
    program = (
        f"source {script}; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; "
        f"COMP_LINE='{line}'; COMP_POINT={len(line)}; "
        "_shtab_gateway; printf '%s\\n' \"${COMPREPLY[@]}\""
    )
    done = subprocess.run(
        ["bash", "-c", program], capture_output=True, text=True, check=True, cwd=cwd
    )
    return [w for w in done.stdout.splitlines() if w]


def test_script_is_valid_bash(script: Path):
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert "-F _shtab_gateway gateway" in script.read_text()


def test_every_command_of_the_parser_is_in_the_script(script: Path):
    text = script.read_text()
    for parser in parsers(build_parser()):
        assert parser.prog.split(" ")[-1] in text, parser.prog


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


def test_the_command_prints_bash_and_zsh(capsys):
    assert main(["completion", "bash"]) == 0
    assert "_shtab_gateway" in capsys.readouterr().out
    assert main(["completion", "zsh"]) == 0
    zsh_script = capsys.readouterr().out
    assert zsh_script.startswith("#compdef gateway")
    if shutil.which("zsh"):
        subprocess.run(["zsh", "-n"], input=zsh_script, text=True, check=True)
