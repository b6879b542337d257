"""``statemachine serve`` throughput: 32 concurrent HTTP clients posting one event per request,
against the same writes without the service, as ratios measured in one run.

    python benchmarks/bench_serve.py [--debits N] [--clients 32]
    STATEMACHINE_PG_DSN=postgresql://postgres@127.0.0.1:5432/test python benchmarks/bench_serve.py

SQLite (WAL, ``synchronous=FULL``): the service, whose writer commits the requests that
arrive together in one transaction, against ``Engine.apply`` one event per transaction on a
file of its own. PostgreSQL (when ``STATEMACHINE_PG_DSN`` is set): two ``serve`` processes on
one database, the clients alternating between them, against raw psycopg on as many
connections as clients, one transaction per event (INSERT event, UPSERT debit, UPSERT
notice). Each client owns a share of the debits and posts their events in order; it waits
for each answer (the verdicts, sent after the commit) before its next request. The clients
speak HTTP/1.1 on keep-alive connections with asyncio streams, so that the load generator
costs little of the machine's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench_core import in_order
from bench_postgres import raw_worker

from statemachine import Engine, Event

DSN = os.environ.get("STATEMACHINE_PG_DSN")


def shares(events: list[Event], clients: int) -> list[list[bytes]]:
    """Each client's request bodies: its debits' events, in order."""
    out: list[list[bytes]] = [[] for _ in range(clients)]
    for event in events:
        out[zlib.crc32(event.debit_id.encode()) % clients].append(event.to_json().encode())
    return out


async def client(url: str, bodies: list[bytes]) -> None:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    for body in bodies:
        writer.write(
            b"POST /events HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"the service answered {head.splitlines()[0]!r}")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
    writer.close()


def post_all(urls: list[str], work: list[list[bytes]]) -> float:
    """Events a second: every client's bodies posted, client n to ``urls[n % len(urls)]``."""

    async def run() -> None:
        await asyncio.gather(*(client(urls[n % len(urls)], b) for n, b in enumerate(work)))

    start = time.perf_counter()
    asyncio.run(run())
    return sum(map(len, work)) / (time.perf_counter() - start)


@contextmanager
def serving(target: str) -> Iterator[str]:
    """A ``statemachine serve`` process on ``target``; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "statemachine", "serve", "--db", target, "--port", "0",
         "--log-level", "warning"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if not line.startswith("serving on"):
        raise SystemExit(f"serve did not start: {line!r}")
    try:
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait()


def sqlite_apply(path: Path, events: list[Event]) -> float:
    with Engine.open(path) as engine:
        start = time.perf_counter()
        for event in events:
            engine.apply(event)
        return len(events) / (time.perf_counter() - start)


def sqlite(debits: int, clients: int) -> None:
    events = in_order(debits)
    with tempfile.TemporaryDirectory() as folder:
        floor = sqlite_apply(Path(folder, "apply.sqlite"), events)
        target = str(Path(folder, "serve.sqlite"))
        Engine.open(target).close()
        with serving(target) as url:
            rate = post_all([url], shares(events, clients))
    print(f"SQLite, synchronous=FULL, {len(events)} events, {clients} clients")
    print(f"  engine.apply, one transaction per event: {floor:8,.0f} ev/s")
    print(f"  statemachine serve (group commit):       {rate:8,.0f} ev/s   x{rate / floor:.2f}")


def postgres(debits: int, clients: int) -> None:
    import psycopg

    assert DSN is not None
    events = in_order(debits)
    schemas = [f"bench_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    try:
        raw_target, served_target = (f"{DSN}?schema={schema}" for schema in schemas)
        Engine.open(raw_target).close()
        Engine.open(served_target).close()
        parts = [[e for e in events if zlib.crc32(e.debit_id.encode()) % clients == n]
                 for n in range(clients)]  # fmt: skip
        threads = [threading.Thread(target=raw_worker, args=(raw_target, part)) for part in parts]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        floor = len(events) / (time.perf_counter() - start)
        with serving(served_target) as one, serving(served_target) as two:
            rate = post_all([one, two], shares(events, clients))
    finally:
        with psycopg.connect(DSN, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    print(f"PostgreSQL, {len(events)} events, {clients} clients")
    print(f"  raw psycopg, {clients} connections, one transaction per event: {floor:8,.0f} ev/s")
    print(f"  2 statemachine serve processes:                    {rate:8,.0f} ev/s   "
          f"x{rate / floor:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--debits", type=int, default=2_000)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    sqlite(args.debits, args.clients)
    if DSN:
        postgres(args.debits, args.clients)


if __name__ == "__main__":
    main()
