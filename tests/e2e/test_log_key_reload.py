"""A running gateway across a log key rotation: it signs nothing while it holds only the
old key, and a reload (what SIGHUP runs) after the key files are copied makes it sign with
the new key and serve both keys at /v1/log/key."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from e2e.conftest import start_gateway

from gateway.config.model import Config
from gateway.errors import LogUnavailableError
from gateway.log.checkpoint import CheckpointError, open_checkpoint
from gateway.log.entries import outcome_entry, row_of
from gateway.log.rotation import rotate_log_key
from gateway.ops.reload import RELOADER
from gateway.web.keys import LOG, STORE


async def test_a_reload_after_the_switch_signs_with_the_new_key(
    tmp_config: Config, tmp_path: Path
) -> None:
    keys = tmp_path / "instance-keys"
    shutil.copytree(tmp_config.keys_dir, keys)
    config = replace(tmp_config, keys_dir=keys)
    client = await start_gateway(config)
    try:
        app = client.server.app
        service = app[LOG]
        old = service.signer.verifier_key
        at = datetime(2026, 11, 2, tzinfo=UTC)
        entry = outcome_entry(disclosure_id="d-1", outcome="sent", at=at, partner="p")
        await service.append_rows([row_of(entry)])
        await service.checkpoint()

        # `gateway log rotate-key` elsewhere, on the same store and (copied) key files.
        rotation = await rotate_log_key(app[STORE], keys, config.log.origin)
        await service.append_rows([row_of(entry)])
        with pytest.raises(LogUnavailableError, match="the log key was rotated"):
            await service.checkpoint()

        assert app[RELOADER].reload().ok
        response = await client.get("/v1/log/key")
        assert (await response.text()).splitlines() == [rotation.current, old]
        signed = await service.checkpoint()
        assert open_checkpoint(signed.note, rotation.current).size == 2
        with pytest.raises(CheckpointError):
            open_checkpoint(signed.note, old)
    finally:
        await client.close()
