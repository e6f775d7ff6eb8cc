"""A small aiohttp load generator, for machines without wrk.

Replays the requests of a file written by ``benchmarks/run.py`` (complete HTTP/1.1
requests separated by NUL bytes, as ``requests.lua`` reads them) over `connections`
keep-alive connections for `seconds`, and prints the same ``BENCH {...}`` line as the
wrk script. Python on the client side costs CPU that wrk would not, on a machine the
server shares: its figures are lower than wrk's.

Usage: ``python -m benchmarks.loadgen URL REQUEST_FILE CONNECTIONS SECONDS``
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp

from benchmarks.partner import use_uvloop

Prepared = tuple[str, str, dict[str, str], bytes]


def parse(raw: bytes) -> Prepared:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() not in ("host", "content-length", "connection"):
            headers[name] = value.strip()
    return method, path, headers, body


async def run(url: str, prepared: list[Prepared], connections: int, seconds: float) -> None:
    latencies: list[float] = []
    non_2xx = errors = 0
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(url, connector=connector) as session:
        stop = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            nonlocal non_2xx, errors
            n = offset
            while time.perf_counter() < stop:
                method, path, headers, body = prepared[n % len(prepared)]
                n += 1
                started = time.perf_counter()
                try:
                    async with session.request(method, path, headers=headers, data=body) as r:
                        await r.read()
                        if r.status >= 400:
                            non_2xx += 1
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(worker(i * 997) for i in range(connections)))
        duration = time.perf_counter() - began
    latencies.sort()

    def percentile(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] if latencies else 0.0

    result = {
        "requests": len(latencies),  # every answer, as wrk counts
        "duration_us": int(duration * 1e6),
        "p50_us": int(percentile(0.50) * 1e6),
        "p99_us": int(percentile(0.99) * 1e6),
        "mean_us": sum(latencies) / max(len(latencies), 1) * 1e6,
        "non_2xx": non_2xx,
        "socket_errors": errors,
    }
    print("BENCH " + json.dumps(result), flush=True)


def main() -> None:
    url, path, connections, seconds = sys.argv[1:5]
    with open(path, "rb") as file:
        prepared = [parse(raw) for raw in file.read().split(b"\0") if raw]
    use_uvloop()
    asyncio.run(run(url, prepared, int(connections), float(seconds)))


if __name__ == "__main__":
    main()
