"""What witnessing costs per checkpoint (issue #18): a figure, not a test.

A :class:`~gateway.log.service.LogService` over SQLite holding ``--entries`` entries, and two
witnesses (``gateway witness serve``, each its own process with its own key and state file)
on loopback under a policy of quorum 2. Then ``--checkpoints`` times: a batch of appends
(``--batch`` entries, about what a second of traffic brings), and the work the gateway does
for that batch's checkpoint, each part timed on its own:

- **sign**: ``LogService.checkpoint()`` (the root, the consistency check against the previous
  checkpoint, the signature, the compare-and-set store), what happens with or without
  witnesses;
- **submit**: ``cosign_checkpoint`` to both witnesses at once (each request carries its
  consistency proof; each answer's cosignature is verified), what the witness runner does
  in the background;
- **store**: the cosigned note and the witnesses' sizes written back (``record_witnessing``);
- **proof**: one consistency proof from the previous checkpoint's size, alone (the submit
  computes one per witness).

For each: the median and p95 wall time, and the CPU of this process (the gateway's side:
the event loop and SQLite's thread) per checkpoint; for the witnesses, the CPU of their
processes per checkpoint, read from /proc. Prints figures; asserts only that every
checkpoint was cosigned by both witnesses.

Usage: ``python benchmarks/witnessing.py [--entries N] [--checkpoints K] [--batch B] [--quick]``.

``benchmarks/run.py`` imports :func:`witnesses` and :func:`policy_text` from here to run a
gateway with a witness policy beside the same gateway without one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the helpers are modules of benchmarks/

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from benchmarks.log import ORIGIN, Templates, fill  # noqa: E402
from gateway.crypto.subject_keys import LogKeys  # noqa: E402
from gateway.log.cosignature import witness_vkey  # noqa: E402
from gateway.log.service import LogService, LogSigner  # noqa: E402
from gateway.log.witness_policy import load_witness_policy  # noqa: E402
from gateway.outbound.delivery import client_session  # noqa: E402
from gateway.outbound.witness_runner import merge_cosignatures, witnessed_note  # noqa: E402
from gateway.outbound.witnesses import cosign_checkpoint  # noqa: E402
from gateway.store import open_store  # noqa: E402
from gateway.witness.keyfile import load_or_create_key  # noqa: E402

STARTUP_TIMEOUT_S = 60.0
T_APPEND = datetime(2026, 12, 1, tzinfo=UTC)  # what is measured does not depend on the time


# -- witness processes (also used by run.py) ---------------------------------------------


@dataclass(frozen=True)
class RunningWitness:
    name: str  # its name in the policy (w1, w2)
    url: str
    vkey: str
    pid: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def witnesses(where: Path, log_vkey: str, count: int = 2) -> Iterator[list[RunningWitness]]:
    """`count` witnesses (``gateway witness serve``) for the log of ``log_vkey``, each with
    its own key and state in ``where``, listening on loopback; stopped on leaving."""
    where.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        running = [stack.enter_context(_witness(where, n, log_vkey)) for n in range(1, count + 1)]
        yield running


@contextmanager
def _witness(where: Path, number: int, log_vkey: str) -> Iterator[RunningWitness]:
    key_path = where / f"witness-{number}.pem"
    name = f"w{number}.bench.example/witness"
    vkey = witness_vkey(name, load_or_create_key(key_path).public_key())
    port = free_port()
    command = [sys.executable, "-m", "gateway", "witness", "serve", "--key", str(key_path)]
    command += ["--name", name, "--log", log_vkey, "--port", str(port)]
    command += ["--state", str(where / f"witness-{number}.state.json")]
    log_path = where / f"witness-{number}.log"
    with log_path.open("wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, process, log_path)
        yield RunningWitness(f"w{number}", f"http://127.0.0.1:{port}", vkey, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_listening(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise SystemExit(f"gateway witness serve did not start; its log:\n{tail}") from None
            time.sleep(0.1)


def policy_text(log_vkey: str, running: Sequence[RunningWitness]) -> str:
    """A tlog-policy: the log, the witnesses, and a quorum of all of them."""
    lines = [f"log {log_vkey}"]
    lines += [f"witness {w.name} {w.vkey} {w.url}" for w in running]
    lines += [f"group all-of-them all {' '.join(w.name for w in running)}", "quorum all-of-them"]
    return "\n".join(lines) + "\n"


def cpu_seconds(pids: Sequence[int]) -> float | None:
    """User + system CPU time of the processes `pids`, from Linux /proc; None elsewhere."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


# -- what a running gateway shows (run.py) -----------------------------------------------


@dataclass(frozen=True)
class Checkpoints:
    """The checkpoints a gateway's SQLite database holds, read beside the running gateway."""

    signed: int
    witnessed: int  # whose cosigned note meets the policy's quorum
    latest_size: int
    latest_age_s: float | None  # seconds since the latest was signed
    latest_witnessed: bool


def checkpoints(db: Path, policy_path: Path | None) -> Checkpoints:
    policy = None if policy_path is None else load_witness_policy(policy_path)
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        rows = conn.execute(
            "SELECT size, created_at, cosigned_note FROM checkpoints ORDER BY seq"
        ).fetchall()
    witnessed = [
        policy is not None and note is not None and witnessed_note(policy, note)
        for _, _, note in rows
    ]
    if not rows:
        return Checkpoints(0, 0, 0, None, False)
    size, at, _ = rows[-1]
    age = (datetime.now(UTC) - datetime.fromisoformat(at)).total_seconds()
    return Checkpoints(len(rows), sum(witnessed), size, age, witnessed[-1])


def scrape_metrics(port: int) -> dict[str, float]:
    """The gateway's /metrics, each sample by its name with labels (Prometheus text)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


# -- the cost per checkpoint -------------------------------------------------------------


@dataclass
class Part:
    """One part of the per-checkpoint work: wall seconds and this process's CPU seconds."""

    label: str
    wall: list[float]
    cpu: list[float]

    def line(self, extra: str = "") -> str:
        wall = sorted(self.wall)
        p95 = wall[min(len(wall) - 1, round(0.95 * (len(wall) - 1)))]
        return (
            f"{self.label}: median {statistics.median(wall) * 1e3:.2f} ms, "
            f"p95 {p95 * 1e3:.2f} ms; gateway CPU {statistics.median(self.cpu) * 1e3:.2f} ms"
            f"{extra}"
        )


class Timer:
    def __init__(self, part: Part) -> None:
        self.part = part

    def __enter__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def __exit__(self, *_: object) -> None:
        self.part.wall.append(time.perf_counter() - self.wall)
        self.part.cpu.append(time.process_time() - self.cpu)


async def per_checkpoint(root: Path, entries: int, checkpoints: int, batch: int) -> None:
    signer = LogSigner(ORIGIN, Ed25519PrivateKey.generate())
    keys = LogKeys.load(root / "keys")
    store = await open_store("sqlite:///witnessing.db", root)
    service = LogService(store, signer)
    session = client_session()
    try:
        started = time.perf_counter()
        await fill(service, keys, entries)
        await service.sync_nodes()
        first = await service.checkpoint()
        print(f"sqlite: {first.size:,} entries filled in {time.perf_counter() - started:.1f}s")
        with witnesses(root / "witnesses", signer.verifier_key) as running:
            policy_path = root / "witnesses.txt"
            policy_path.write_text(policy_text(signer.verifier_key, running))
            policy = load_witness_policy(policy_path)
            pids = [w.pid for w in running]
            # The witnesses' first cosignature (from size 0, no proof) is not a steady state.
            first_round = await cosign_checkpoint(
                session, policy, first.note, first.size, service.consistency_proof, {}
            )
            if not first_round.quorum_met:
                raise SystemExit(f"the witnesses did not cosign: {first_round.outcomes}")
            known = first_round.known_sizes({})
            sign, submit = Part("sign", [], []), Part("submit to both witnesses", [], [])
            record, proof = Part("store the cosigned note", [], []), Part("proof", [], [])
            witness_cpu: list[float] = []
            proof_hashes = 0
            templates = Templates()
            previous = first
            next_index = entries // 2 + 1
            for _ in range(checkpoints):
                rows = []
                for _ in range(batch // 2):
                    rows += templates.rows(next_index, T_APPEND, f"ref-{next_index}")
                    next_index += 1
                await service.append_rows(rows)
                await service.sync_nodes()  # the gateway stores nodes after appends, off this path
                with Timer(sign):
                    checkpoint = await service.checkpoint()
                before = cpu_seconds(pids)
                with Timer(submit):
                    result = await cosign_checkpoint(
                        session,
                        policy,
                        checkpoint.note,
                        checkpoint.size,
                        service.consistency_proof,
                        known,
                    )
                after = cpu_seconds(pids)
                if not result.quorum_met:
                    raise SystemExit(f"the witnesses did not cosign: {result.outcomes}")
                if before is not None and after is not None:
                    witness_cpu.append(after - before)
                with Timer(record):
                    note = merge_cosignatures(checkpoint.note, result.note)
                    sizes = {name: c.size for name, c in result.cosigned.items()}
                    await store.record_witnessing(checkpoint.seq, note, sizes, checkpoint.at)
                known = result.known_sizes(known)
                with Timer(proof):
                    hashes = await service.consistency_proof(previous.size, checkpoint.size)
                proof_hashes = len(hashes)
                previous = checkpoint

            print(
                f"sqlite, {previous.size:,} entries at the end; {checkpoints} checkpoints, each "
                f"after {batch:,} appends; {len(running)} witnesses (`gateway witness serve`) "
                "on loopback, quorum all"
            )
            print(sign.line(" (root, consistency check, signature, stored)"))
            # /proc counts CPU in ticks (10 ms): the mean over every checkpoint, not a median.
            per_witness = (
                ""
                if not witness_cpu
                else f"; witnesses' CPU {sum(witness_cpu) * 1e3 / len(witness_cpu) / len(pids):.2f}"
                " ms each (mean)"
            )
            print(submit.line(f" (cosign_checkpoint: proofs, both answers verified){per_witness}"))
            print(record.line())
            proof.label = f"consistency proof alone ({proof_hashes} hashes)"
            print(proof.line())
            total = [a + b + c for a, b, c in zip(sign.wall, submit.wall, record.wall, strict=True)]
            total_cpu = [
                a + b + c for a, b, c in zip(sign.cpu, submit.cpu, record.cpu, strict=True)
            ]
            witness_part = [b + c for b, c in zip(submit.cpu, record.cpu, strict=True)]
            print(
                f"per checkpoint in all: median {statistics.median(total) * 1e3:.2f} ms, gateway "
                f"CPU {statistics.median(total_cpu) * 1e3:.2f} ms, of which witnessing "
                f"{statistics.median(witness_part) * 1e3:.2f} ms (one checkpoint a second: "
                f"{statistics.median(witness_part) * 100:.2f}% of one core)"
            )
    finally:
        await session.close()
        await service.stop(final_checkpoint=False)
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, help="entries in the log (default 1,000,000)")
    parser.add_argument("--checkpoints", type=int, help="checkpoints measured (default 50)")
    parser.add_argument(
        "--batch", type=int, default=1000, help="entries appended before each (default 1,000)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    args = parser.parse_args()
    entries = args.entries or (2_000 if args.quick else 1_000_000)
    checkpoints = args.checkpoints or (5 if args.quick else 50)
    with tempfile.TemporaryDirectory(prefix="gw-bench-witnessing-") as scratch:
        asyncio.run(per_checkpoint(Path(scratch), entries, checkpoints, args.batch))


if __name__ == "__main__":
    main()
