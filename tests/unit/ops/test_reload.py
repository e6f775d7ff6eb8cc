"""Reloading partners and config in a running gateway (gateway.ops.reload, issue 9): an
invalid new set, config or failing start check keeps the old set in force and logs why; a
valid one swaps partners and callers, runs the swap hooks and says what needs a restart."""

from __future__ import annotations

import logging
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.config.model import Config, load_config
from gateway.errors import ConfigErrors
from gateway.ops.reload import Reloader
from gateway.partners import LiveTable, current, load_partners

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def copied(tmp_path: Path, project: Path) -> Config:
    root = tmp_path / "project"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("var"))
    return load_config(root / "config.toml")


def reloader_for(config: Config) -> Reloader:
    partners = LiveTable(load_partners(config.partners_dir, config.root))
    return Reloader(config.path, config, partners, LiveTable(config.callers), clock=lambda: NOW)


def test_invalid_new_partner_file_keeps_the_old_set_and_logs_why(copied, caplog):
    reloader = reloader_for(copied)
    before = current(reloader.partners)
    path = copied.partners_dir / "veriid.toml"
    text = path.read_text()
    path.write_text(text.replace('category = "identity_verification"', 'category = "spy_agency"'))
    with caplog.at_level(logging.INFO, logger="gateway.lifecycle"):
        result = reloader.reload()
    assert not result.ok
    assert any(f"{path}:" in p and "spy_agency" in p for p in result.problems)
    assert current(reloader.partners) is before  # the running set, untouched
    assert "reload refused" in caplog.text and "spy_agency" in caplog.text
    assert f"{path}:" in caplog.text


def test_invalid_config_keeps_everything(copied):
    reloader = reloader_for(copied)
    before = current(reloader.partners)
    text = copied.path.read_text()
    copied.path.write_text(re.sub(r"(?m)^warn_days = .*$", "warn_days = -3", text))
    result = reloader.reload()
    assert not result.ok and "warn_days" in result.problems[0]
    assert current(reloader.partners) is before and reloader.warn_days == 30


def test_a_failing_start_check_refuses_the_reload(copied):
    reloader = reloader_for(copied)
    before = current(reloader.partners)

    def secrets_missing(fresh: object) -> None:
        from gateway.errors import ConfigError

        raise ConfigErrors([ConfigError("partners/veriid.toml", None, "secret file missing")])

    reloader.checks.append(secrets_missing)
    result = reloader.reload()
    assert not result.ok and result.problems == ("partners/veriid.toml: secret file missing",)
    assert current(reloader.partners) is before


def test_valid_reload_swaps_partners_callers_and_says_what_needs_a_restart(copied, caplog):
    reloader = reloader_for(copied)
    swapped: list[tuple[set[str], set[str]]] = []
    reloader.on_swap.append(lambda old, new: swapped.append((set(old), set(new))))
    path = copied.partners_dir / "veriid.toml"
    path.write_text(
        path.read_text()
        .replace("retention_days = 90", "retention_days = 30")
        .replace(
            'agreement = "DPA-2025-011"',
            'agreement = "DPA-2025-011"\nagreement_expires_on = 2026-12-01',
        )
    )
    (copied.partners_dir / "adreach.toml").unlink()
    text = copied.path.read_text()
    text = text.replace('id = "reviewer-bob"', 'id = "reviewer-carol"').replace(
        "port = 8080", "port = 8081"
    )
    copied.path.write_text(re.sub(r"(?m)^warn_days = .*$", "warn_days = 10", text))
    with caplog.at_level(logging.INFO, logger="gateway.lifecycle"):
        result = reloader.reload()
    assert result.ok, result.problems
    assert (result.added, result.removed, result.changed) == ((), ("adreach",), ("veriid",))
    assert result.restart_needed == ("[server]",)
    assert current(reloader.partners)["veriid"].retention_days == 30
    assert "adreach" not in reloader.partners
    assert reloader.callers is not None and "reviewer-carol" in reloader.callers
    assert "reviewer-bob" not in reloader.callers
    assert reloader.warn_days == 10
    assert swapped and "adreach" in swapped[0][0] and "adreach" not in swapped[0][1]
    assert "removed adreach" in caplog.text and "[server]" in caplog.text
    # Reload logs the expiry warnings too: 7 days left < warn_days 10.
    assert "veriid ends on 2026-12-01 (7 day(s) left)" in caplog.text
