"""Local queue backends: PgQueues (durable, on the embedded Postgres) against moto's SQS server, in one run.

Both through the same QueueBackend calls `tgops dev` makes, one caller at a time, on a standard queue:
- send: `--ops` sends, awaited one by one, into a shallow queue (empty at the start) and into a queue
  already `--depth` deep (ARCHITECTURE.md: moto's send costs ~4 ms and grows with depth);
- receive+delete: batches of 10 received, each message deleted, `--ops` messages from a shallow queue
  (`--ops` deep) and from a `--depth` deep one.
Postgres runs as `tgops dev` runs it: durable (fsync on). Prints one JSON line: operations per second
and median milliseconds per operation, per backend and case, and PgQueues' speed-up over moto.

    python bench/local_queues.py [--ops 200] [--depth 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from tgops.config import Settings
from tgops.local.services import LocalPostgres, LocalSqs
from tgops.messaging.backend import QueueBackend
from tgops.messaging.pg_queues import PgQueues
from tgops.messaging.sqs import SqsQueues
from tgops.messaging.topology import SETUP_FAST

QUEUE = SETUP_FAST.name
BODY = json.dumps({"kind": "bench", "schema_version": 1, "payload": "x" * 200})


async def fill(queues: QueueBackend, count: int) -> None:
    for start in range(0, count, 50):
        await asyncio.gather(*(queues.send(QUEUE, BODY) for _ in range(min(50, count - start))))


async def drain(queues: QueueBackend) -> None:
    while batch := await queues.receive(QUEUE, wait_time_sec=0):
        await asyncio.gather(*(queues.delete(QUEUE, message.receipt_handle) for message in batch))


def figure(count: int, seconds: float, per_op_ms: list[float]) -> dict:
    return {"ops_per_sec": round(count / seconds, 1), "median_ms": round(statistics.median(per_op_ms), 3)}


async def timed_sends(queues: QueueBackend, count: int) -> dict:
    per_op = []
    started = time.perf_counter()
    for _ in range(count):
        begun = time.perf_counter()
        await queues.send(QUEUE, BODY)
        per_op.append((time.perf_counter() - begun) * 1000)
    return figure(count, time.perf_counter() - started, per_op)


async def timed_receive_delete(queues: QueueBackend, count: int) -> dict:
    per_message, done = [], 0
    started = time.perf_counter()
    while done < count:
        begun = time.perf_counter()
        batch = await queues.receive(QUEUE, max_messages=min(10, count - done), wait_time_sec=0)
        if not batch:
            raise RuntimeError(f"{QUEUE} ran dry after {done} messages")
        for message in batch:
            await queues.delete(QUEUE, message.receipt_handle)
        per_message += [(time.perf_counter() - begun) * 1000 / len(batch)] * len(batch)
        done += len(batch)
    return figure(done, time.perf_counter() - started, per_message)


async def measure(queues: QueueBackend, ops: int, depth: int) -> dict:
    queues.ensure_queues()
    await drain(queues)
    await fill(queues, 50)  # warm connections and caches
    await drain(queues)
    result = {"send_shallow": await timed_sends(queues, ops)}
    result["receive_delete_shallow"] = await timed_receive_delete(queues, ops)
    await drain(queues)
    await fill(queues, depth)
    result[f"send_at_{depth}"] = await timed_sends(queues, ops)
    result[f"receive_delete_at_{depth}"] = await timed_receive_delete(queues, ops)
    return result  # not drained: the queues go with the run (moto would take minutes at this depth)


async def run(ops: int, depth: int) -> dict:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    with tempfile.TemporaryDirectory(prefix="tgops-bench-") as directory:
        postgres, sqs = LocalPostgres(Path(directory) / "postgres", durable=True), LocalSqs()
        database_url, endpoint = postgres.start(), sqs.start()
        try:
            local = PgQueues(database_url, queue_prefix="bench-")
            try:
                pg = await measure(local, ops, depth)
            finally:
                await local.aclose()
            moto = await measure(
                SqsQueues(Settings(_env_file=None, sqs_endpoint_url=endpoint, queue_prefix="bench-")),
                ops,
                depth,
            )
        finally:
            sqs.stop()
            postgres.stop()
    speedup = {case: round(pg[case]["ops_per_sec"] / moto[case]["ops_per_sec"], 2) for case in pg}
    return {
        "bench": "local_queues",
        "ops": ops,
        "depth": depth,
        "postgres_durable": True,
        "pg_queues": pg,
        "moto_server": moto,
        "pg_over_moto": speedup,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--depth", type=int, default=2000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.ops, args.depth))))


if __name__ == "__main__":
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    main()
