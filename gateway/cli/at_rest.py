"""`gateway keys rotate-at-rest`: a new at-rest key, and every stored value re-sealed.

After it printed that every value is sealed with the new key, the older
``keys/at-rest-<n>.key`` files seal nothing any more and can be deleted (after the
other instances restarted, so none still seals with an old key).
"""

from __future__ import annotations

import argparse
import asyncio

from gateway.cli.support import EXIT_OK, load
from gateway.crypto.at_rest import at_rest_key_files
from gateway.crypto.generate import add_at_rest_key
from gateway.store import open_store
from gateway.store.protected import load_at_rest_keys, protect_stored_rows


def cmd_keys_rotate_at_rest(args: argparse.Namespace) -> int:
    config = load(args)
    load_at_rest_keys(config.keys_dir)  # the old keys must open what is stored
    path = add_at_rest_key(config.keys_dir)
    keys = load_at_rest_keys(config.keys_dir)

    async def run() -> int:
        store = await open_store(config.storage_url, config.root)
        try:
            return await protect_stored_rows(store, keys)
        finally:
            await store.close()

    rewritten = asyncio.run(run())
    older = [p.name for kid, p in at_rest_key_files(config.keys_dir).items() if kid != keys.newest]
    print(f"new at-rest key {path.name} ({keys.newest}); {rewritten} stored value(s) re-sealed")
    print(
        "restart every gateway instance (a start re-seals what an instance still running "
        "sealed with an older key); then delete the older key file(s): "
        f"{', '.join(older) or 'none'}"
    )
    return EXIT_OK
