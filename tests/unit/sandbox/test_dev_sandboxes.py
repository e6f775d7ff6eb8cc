"""The development sandboxes of `gateway serve`: the [sandbox] serve switch, the rule that
only an all-loopback config starts any, and a busy port that leaves one partner out."""

from __future__ import annotations

import logging
import re
import shutil
import socket
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from gateway.config.model import Config, load_config
from gateway.crypto.seal import GatewayKeys
from gateway.errors import ConfigErrors, GatewayError
from gateway.partners.model import Partner
from gateway.sandbox import start_sandboxes
from gateway.sandbox.dev import plan_sandboxes, start_dev_sandboxes

REPO = Path(__file__).resolve().parents[3]
LOOPBACK_URL = re.compile(r"https?://127\.0\.0\.1:91\d\d")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def copy_project(project: Path, root: Path, url: str | None = None) -> Config:
    """The shipped project in `root`; each partner at `url`, or at a free loopback port."""
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("var"))
    for file in (root / "partners").glob("*.toml"):
        text = file.read_text()
        if url is None:  # one free port per partner file: base_url and a token_url beside it
            text = re.sub(r"127\.0\.0\.1:91\d\d", f"127.0.0.1:{free_port()}", text)
        else:
            text = LOOPBACK_URL.sub(url, text)
        file.write_text(text)
    return load_config(root / "config.toml")


# -- the switch in config.toml ----------------------------------------------------------------


def test_shipped_config_serves_sandboxes_and_the_default_is_off(tmp_path: Path) -> None:
    assert load_config(REPO / "config.toml").sandbox_serve is True
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(re.sub(r"(?ms)^\[sandbox\]\n.*?\n\n", "", text, count=1))
    assert "[sandbox]" not in path.read_text()
    assert load_config(path).sandbox_serve is False


def test_a_switch_that_is_not_a_boolean_is_refused_with_its_line(tmp_path: Path) -> None:
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(text.replace("serve = true", 'serve = "yes"', 1))
    with pytest.raises(ConfigErrors) as exc:
        load_config(path)
    [error] = exc.value.errors
    line = next(n for n, t in enumerate(path.read_text().splitlines(), 1) if t.startswith("serve"))
    assert error.line == line and "sandbox.serve must be true or false" in error.message


# -- the plan: pure ----------------------------------------------------------------------------


def test_plan_serves_every_partner_when_all_are_on_loopback(
    partners: dict[str, Partner],
) -> None:
    plan = plan_sandboxes(True, partners)
    assert plan.serve == tuple(sorted(partners)) and not plan.refused


def test_plan_serves_none_when_switched_off(partners: dict[str, Partner]) -> None:
    plan = plan_sandboxes(False, partners)
    assert plan.serve == () and not plan.refused


def test_plan_serves_none_when_one_partner_is_not_on_loopback(
    partners: dict[str, Partner],
) -> None:
    mixed = {**partners, "veriid": replace(partners["veriid"], base_url="https://api.veriid.la")}
    plan = plan_sandboxes(True, mixed)
    assert plan.serve == () and plan.refused
    assert "veriid is not on loopback" in plan.reason and "serve = false" in plan.reason


# -- starting them ------------------------------------------------------------------------------


async def test_a_production_config_starts_no_sandbox_whatever_it_says(
    project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = copy_project(project, tmp_path / "prod", url="https://api.partner.example")
    assert config.sandbox_serve is True  # the switch is left on by mistake
    with caplog.at_level(logging.INFO, logger="gateway.sandbox.dev"):
        cluster = await start_dev_sandboxes(config, env={})
    assert cluster is None
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "not on loopback" in record.getMessage() and "no sandbox starts" in record.message


async def test_a_development_config_serves_each_partner_on_its_base_url(
    project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = copy_project(project, tmp_path / "dev")
    with caplog.at_level(logging.INFO, logger="gateway.sandbox.dev"):
        cluster = await start_dev_sandboxes(config, env={})
    assert cluster is not None
    try:
        files = {p.stem: p.read_text() for p in config.partners_dir.glob("*.toml")}
        assert sorted(cluster.partners) == sorted(files)
        for pid, partner in cluster.partners.items():
            assert f'base_url = "{partner.base_url}"' in files[pid]  # its own port, as written
        [record] = caplog.records
        assert all(
            f"{pid} {p.base_url}" in record.getMessage() for pid, p in cluster.partners.items()
        )
        url = cluster.base_url("adreach") + "/_sandbox/received"
        async with aiohttp.ClientSession() as http, http.get(url) as answer:
            assert answer.status == 200 and await answer.json() == []
    finally:
        await cluster.close()


async def test_a_busy_port_leaves_that_sandbox_out_and_says_so(
    project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = copy_project(project, tmp_path / "busy")
    partners = {p.stem: p for p in config.partners_dir.glob("*.toml")}
    taken = int(re.findall(r"127\.0\.0\.1:(\d+)", partners["adreach"].read_text())[0])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        with caplog.at_level(logging.INFO, logger="gateway.sandbox.dev"):
            cluster = await start_dev_sandboxes(config, env={})
        assert cluster is not None
        try:
            assert cluster.busy == {"adreach": f"127.0.0.1:{taken}"}
            assert "adreach" not in cluster.partners and len(cluster.partners) == 7
            warning, info = caplog.records
            assert warning.levelno == logging.WARNING
            assert f"adreach 127.0.0.1:{taken}" in warning.getMessage()
            assert "adreach" not in info.getMessage()
        finally:
            await cluster.close()


async def test_start_sandboxes_still_fails_on_a_busy_port_unless_asked(
    config: Config, partners: dict[str, Partner]
) -> None:
    one = {"adreach": partners["adreach"]}
    jwks = GatewayKeys.load(config.keys_dir).jwks()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(GatewayError, match="cannot listen"):
            await start_sandboxes(one, config.keys_dir, jwks, {}, ports={"adreach": port})
