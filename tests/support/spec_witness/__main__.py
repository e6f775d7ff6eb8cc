"""Run the spec witness as its own process.

    python -m spec_witness --key FILE --log VKEY [--log VKEY ...] --port P --state FILE
        [--host 127.0.0.1] [--name NAME]
    python -m spec_witness --key FILE --print-vkey [--name NAME]

(with tests/support on PYTHONPATH). The key file is created (mode 0600, cosigner ``NAME``)
when it does not exist. On start it prints ``vkey <cosignature/v1 vkey>`` and then
``listening on http://HOST:PORT``, each on its own line, flushed, and serves until killed,
logging each request's verdict on stderr. ``spec_witness.process.running_witness`` starts it
from a test.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from aiohttp import web

from .cosignature import load_or_create_cosigner
from .server import Witness, make_app


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="spec_witness", description=__doc__.split("\n")[0])
    parser.add_argument("--key", type=Path, required=True, help="witness signer key file")
    parser.add_argument("--name", default="spec-witness.example/w1", help="name for a new key")
    parser.add_argument("--print-vkey", action="store_true", help="print the vkey and exit")
    parser.add_argument("--log", action="append", default=[], help="trusted log vkey (0x01)")
    parser.add_argument("--state", type=Path, help="JSON file of the witnessed sizes")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.print_vkey and (not args.log or args.state is None or not args.port):
        parser.error("serving needs --log, --state and --port")
    return args


async def serve(witness: Witness, host: str, port: int) -> None:
    runner = web.AppRunner(make_app(witness))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"vkey {witness.cosigner.vkey}", flush=True)
    print(f"listening on http://{host}:{port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    cosigner = load_or_create_cosigner(args.key, args.name)
    if args.print_vkey:
        print(cosigner.vkey)
        return 0
    # One line per request on stderr, so a test's output shows what the witness decided.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="spec_witness: %(message)s")
    witness = Witness(cosigner, args.log, args.state)
    try:
        asyncio.run(serve(witness, args.host, args.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
