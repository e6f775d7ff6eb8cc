"""`gateway partners list|validate|suspend|resume|suspensions|reload` (issue 9): days left
and warnings, suspending from the CLI on the configured store, and a reload that is
only requested when the new files are valid."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.credentials import token_of

from gateway.cli.main import main


@pytest.fixture
def root(tmp_path: Path, project: Path) -> Path:
    """A project copy on its own SQLite file, bcel-payments' agreement ending in 10 days and
    veriid's ended."""
    root = tmp_path / "project"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("var"))
    today = datetime.now(UTC).date()
    for partner, last_day in (
        ("bcel-payments", today + timedelta(days=10)),
        ("veriid", today - timedelta(days=3)),
    ):
        path = root / "partners" / f"{partner}.toml"
        lines = path.read_text().splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith("agreement ="))
        lines.insert(at + 1, f"agreement_expires_on = {last_day.isoformat()}")
        path.write_text("\n".join(lines) + "\n")
    return root


def gateway(root: Path, *args: str) -> int:
    return main(["--config", str(root / "config.toml"), *args])


def test_list_shows_days_left_and_warns(root, capsys):
    assert gateway(root, "partners", "list") == 0
    out = capsys.readouterr().out
    header, *rows = out.splitlines()
    assert "ENDS" in header and "DAYS LEFT" in header
    bcel = next(r for r in rows if r.startswith("bcel-payments"))
    assert "10d" in bcel.split()
    veriid = next(r for r in rows if r.startswith("veriid"))
    assert "expired 3d ago" in veriid
    assert "warning: the data-processing agreement of bcel-payments ends on" in out
    assert "(10 day(s) left)" in out
    assert "warning: the data-processing agreement of veriid expired" in out
    assert "adreach" not in "".join(line for line in out.splitlines() if "warning" in line)

    assert gateway(root, "partners", "list", "--json") == 0
    listed = {p["id"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed["bcel-payments"]["agreement_days_left"] == 10
    assert listed["veriid"]["agreement_days_left"] == -3
    assert listed["adreach"]["agreement_days_left"] is None
    assert listed["bcel-payments"]["warnings"] and not listed["adreach"]["warnings"]


def test_warn_days_sets_the_window(root, capsys):
    config = root / "config.toml"
    config.write_text(re.sub(r"(?m)^warn_days = .*$", "warn_days = 5", config.read_text()))
    assert gateway(root, "partners", "validate") == 0
    out = capsys.readouterr().out
    assert "8 partner file(s) valid" in out
    assert "bcel-payments" not in "".join(x for x in out.splitlines() if "warning" in x)
    assert "warning: the data-processing agreement of veriid expired" in out


def test_suspend_and_resume_from_the_cli(root, capsys, monkeypatch):
    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, "reviewer-alice"))
    suspend = ("partners", "suspend", "veriid", "--as", "reviewer-alice", "--reason")
    assert gateway(root, *suspend, "INC-12") == 0
    made = json.loads(capsys.readouterr().out)
    assert made["suspended"] and made["changed"] and made["by"] == "reviewer-alice"
    assert gateway(root, *suspend, "again") == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["changed"] is False and "already suspended" in captured.err

    # Resuming reopens sharing: only a reviewer of config.toml may, proven.
    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, "sales-service"))
    assert gateway(root, "partners", "resume", "veriid", "--as", "sales-service") == 2
    assert "not a reviewer" in capsys.readouterr().err
    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, "reviewer-bob"))
    assert gateway(root, "partners", "resume", "veriid", "--as", "reviewer-bob") == 0
    assert json.loads(capsys.readouterr().out)["changed"] is True

    assert gateway(root, "partners", "suspensions", "--history") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["suspended"] == []
    assert [(e["action"], e["partner"]) for e in shown["history"]] == [
        ("resume", "veriid"),
        ("suspend", "veriid"),
    ]
    assert (
        gateway(root, "partners", "suspend", "nobody", "--reason", "x", "--as", "reviewer-bob") == 2
    )
    assert "unknown_partner" in capsys.readouterr().err
    assert gateway(root, "partners", "suspensions", "--limit", "0") == 2


@pytest.fixture
def listener(tmp_path: Path):
    """A process standing in for `gateway serve`: it notes each SIGHUP in a file."""
    mark = tmp_path / "hup"
    script = (
        "import signal, sys, time\n"
        f"def hup(*_): open({str(mark)!r}, 'a').write('hup\\n')\n"
        "signal.signal(signal.SIGHUP, hup)\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stdout.readline().strip() == b"ready"
        yield process, mark
        process.kill()


def test_reload_validates_then_signals_the_gateway(root, listener, capsys):
    process, mark = listener
    pid_file = root / "var" / "gateway.pid"
    pid_file.parent.mkdir(exist_ok=True)
    pid_file.write_text(f"{process.pid}\n")

    broken = root / "partners" / "adreach.toml"
    good = broken.read_text()
    broken.write_text(good.replace('category = "advertising_marketing"', 'category = "spies"'))
    assert gateway(root, "partners", "reload") == 2
    err = capsys.readouterr().err
    assert f"{broken}:" in err and "reload not requested" in err
    time.sleep(0.1)
    assert not mark.exists()  # an invalid set never reaches the running gateway

    broken.write_text(good)
    assert gateway(root, "partners", "reload") == 0
    assert f"sent SIGHUP to the gateway (pid {process.pid})" in capsys.readouterr().out
    for _ in range(100):
        # The file exists a moment before the handler's write lands in it.
        if mark.exists() and mark.read_text():
            break
        time.sleep(0.02)
    assert mark.read_text() == "hup\n"


def test_reload_without_a_running_gateway(root, tmp_path, capsys):
    assert gateway(root, "partners", "reload") == 2
    assert "no gateway pid in" in capsys.readouterr().err
    stale = tmp_path / "stale.pid"
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )
    stale.write_text(done.stdout.decode())
    assert gateway(root, "partners", "reload", "--pid-file", str(stale)) == 2
    assert "stale" in capsys.readouterr().err


def test_pid_file_is_under_the_configs_folder_not_the_current_one(
    root, tmp_path, listener, capsys, monkeypatch
):
    """Two gateways from two folders keep two pid files; reload finds the right one from
    anywhere (the README's `kill -HUP $(cat var/gateway.pid)` is run beside config.toml)."""
    from gateway.config.model import load_config
    from gateway.ops.reload import pid_file_of

    other = tmp_path / "other"
    shutil.copytree(root, other)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert pid_file_of(load_config(root / "config.toml")) == root / "var" / "gateway.pid"
    assert pid_file_of(load_config(other / "config.toml")) == other / "var" / "gateway.pid"

    process, mark = listener
    (other / "var").mkdir(exist_ok=True)
    (other / "var" / "gateway.pid").write_text(f"{process.pid}\n")
    assert main(["--config", str(other / "config.toml"), "partners", "reload"]) == 0
    assert f"(pid {process.pid})" in capsys.readouterr().out
    for _ in range(250):  # the listener writes its mark on SIGHUP; a loaded machine is slow
        if mark.exists() and mark.read_text() == "hup\n":
            break
        time.sleep(0.02)
    assert mark.read_text() == "hup\n"
    assert main(["--config", str(root / "config.toml"), "partners", "reload"]) == 2
    assert f"no gateway pid in {root / 'var' / 'gateway.pid'}" in capsys.readouterr().err
    assert not (elsewhere / "var").exists()
