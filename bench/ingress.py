"""Webhook ACK latency and throughput under uvicorn with real Redis, against a bare FastAPI endpoint.

One uvicorn worker serves both `POST /api/webhooks/telegram` (secret check, validation, Redis SET NX,
routing, enqueue) and `POST /bench/bare` (parse the JSON body, answer 200). A separate load process
keeps 32 keep-alive connections busy with realistic updates (the saved events of tests/events), one in
ten a re-send of a recent update. The main figure uses an in-process queue sender, because the local
SQS emulator's own cost (milliseconds per send, growing with queue depth) would hide ours; a second,
separate figure runs a shorter load against the emulator (moto server).
At saturation every request also waits for the 31 ahead of it (latency = connections / throughput),
so a paced phase (--paced-rps in total, latency counted from each request's scheduled time) gives
the ACK latency of an unsaturated server as well.
Goal: webhook p99 <= 10 ms on loopback and throughput >= 0.5x the bare endpoint.

    python bench/ingress.py [--seconds 8] [--paced-rps 1000] [--emulator-requests 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "tests" / "events"
ROUTED_EVENTS = (
    "telegram_update_private_message",
    "telegram_update_callback_query",
    "telegram_update_group_command",
    "telegram_update_group_message",
    "telegram_update_join_request",
    "telegram_update_my_chat_member",
)
SECRET = "bench-webhook-secret"
CONNECTIONS = 32
DUPLICATE_SHARE = 0.1
WEBHOOK_PATH = "/api/webhooks/telegram"
BARE_PATH = "/bench/bare"


# --- the server (a child process) ---------------------------------------------------------------


def serve(port: int, redis_url: str, sqs_endpoint: str | None) -> None:
    import uvicorn
    from fastapi import FastAPI, Request

    from tgops.api.app import create_app, freeze_loaded_objects
    from tgops.config import Settings
    from tgops.messaging.sqs import check_send, find_spec
    from tgops.messaging.topology import QUEUES
    from tgops.runtime import Runtime

    class CountingQueues:
        """Checks each send as SQS would and counts it; keeps nothing, unlike InMemoryQueues, whose
        growing record would bring garbage-collection pauses of its own into the figure."""

        def __init__(self) -> None:
            self.sent = 0

        async def send(self, queue, body, *, group_id=None, dedup_id=None, delay_sec=0) -> str:
            check_send(find_spec(QUEUES, queue), group_id, dedup_id, delay_sec)
            self.sent += 1
            return str(self.sent)

    settings = Settings(
        _env_file=None, redis_url=redis_url, telegram_webhook_secret=SECRET, sqs_endpoint_url=sqs_endpoint
    )
    if sqs_endpoint:
        runtime = Runtime(settings)
        runtime.queues().ensure_queues()
    else:
        runtime = Runtime(settings, queue_sender=CountingQueues())
    queues = runtime.queues()
    app: FastAPI = create_app(runtime)

    @app.post(BARE_PATH, include_in_schema=False)
    async def bare(request: Request) -> dict:
        json.loads(await request.body())
        return {"ok": True}

    @app.get("/bench/sent", include_in_schema=False)
    async def sent() -> dict:
        if isinstance(queues, CountingQueues):
            return {"sent": queues.sent}
        depths = await asyncio.to_thread(queues.approximate_depths)
        return {"sent": depths["dm_queue"]["visible"] + depths["tgms_queue"]["visible"]}

    freeze_loaded_objects()  # as the Lambda handler and `tgops dev` do
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- the load (this process) ---------------------------------------------------------------------


def build_requests(path: str, count: int, first_update_id: int, seed: int) -> tuple[list[bytes], int]:
    """`count` raw HTTP requests; about DUPLICATE_SHARE of them re-send a recent update. Returns the
    requests and the number of distinct updates among them."""
    rng = random.Random(seed)
    templates = [json.loads((EVENTS / f"{name}.json").read_text()) for name in ROUTED_EVENTS]
    bodies: list[bytes] = []
    update_id = first_update_id
    for _ in range(count):
        if bodies and rng.random() < DUPLICATE_SHARE:
            bodies.append(bodies[-rng.randint(1, min(len(bodies), 50))])
            continue
        update = dict(rng.choice(templates), update_id=update_id)
        update_id += 1
        bodies.append(json.dumps(update).encode())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Telegram-Bot-Api-Secret-Token: {SECRET}\r\n"
    )
    requests = [f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body for body in bodies]
    return requests, update_id - first_update_id


async def one_connection(
    port: int,
    requests: list[bytes],
    cursor: list[int],
    deadline: float,
    interval: float,
    latencies: list[float],
    failures: list[int],
) -> None:
    """Send requests back to back (interval 0), or one every `interval` seconds on a fixed schedule;
    latency counts from the scheduled time, so a slow answer also delays (and charges) the next."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    scheduled = time.perf_counter() + random.random() * interval
    try:
        while time.perf_counter() < deadline and cursor[0] < len(requests):
            request = requests[cursor[0]]
            cursor[0] += 1
            if interval:
                await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
                started = scheduled
                scheduled += interval
            else:
                started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                failures.append(int(head[9:12]))
    finally:
        writer.close()


async def load(port: int, requests: list[bytes], seconds: float, rate: float = 0) -> dict:
    """Saturating load (rate 0), or `rate` requests/s in total, spread over the connections."""
    latencies: list[float] = []
    failures: list[int] = []
    cursor = [0]
    interval = CONNECTIONS / rate if rate else 0.0
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(
            one_connection(port, requests, cursor, deadline, interval, latencies, failures)
            for _ in range(CONNECTIONS)
        )
    )
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "non_200": len(failures),
        "rps": round(len(ordered) / elapsed),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
    }


def start_server(port: int, redis_url: str, sqs_endpoint: str | None) -> subprocess.Popen:
    env = {name: value for name, value in os.environ.items() if not name.startswith("TGOPS_")}
    env |= {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    command = [sys.executable, __file__, "--serve", str(port), "--redis-url", redis_url]
    if sqs_endpoint:
        command += ["--sqs-endpoint", sqs_endpoint]
    server = subprocess.Popen(command, env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=1).read()
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the benchmark server did not start")


def queued_count(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/sent", timeout=30) as response:
        return json.loads(response.read())["sent"]


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait(timeout=30)


def run(seconds: float, paced_rps: int, emulator_requests: int) -> dict:
    from tgops.local.services import LocalRedis, LocalSqs, free_port

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request

    with tempfile.TemporaryDirectory(prefix="tgops-bench-") as directory:
        redis_server = LocalRedis(Path(directory) / "redis", durable=False)
        redis_url = redis_server.start()
        sqs = LocalSqs()
        try:
            port = free_port()
            server = start_server(port, redis_url, None)
            try:
                capacity = int(seconds * 20000)
                webhook_requests, _ = build_requests(WEBHOOK_PATH, capacity, 1, seed=1)
                bare_requests, _ = build_requests(BARE_PATH, capacity, 1, seed=2)
                warmup, _ = build_requests(WEBHOOK_PATH, 2000, 10**9, seed=3)
                asyncio.run(load(port, warmup, 1.0))
                warm_queued = queued_count(port)
                asyncio.run(load(port, bare_requests[:2000], 1.0))
                bare = asyncio.run(load(port, bare_requests, seconds))
                webhook = asyncio.run(load(port, webhook_requests, seconds))
                distinct_sent = len(
                    {request.rsplit(b"\r\n\r\n", 1)[1] for request in webhook_requests[: webhook["requests"]]}
                )
                webhook["queued"] = queued_count(port) - warm_queued
                webhook["distinct_updates_sent"] = distinct_sent
                paced_bare = asyncio.run(load(port, bare_requests, seconds, paced_rps))
                paced_requests, _ = build_requests(WEBHOOK_PATH, capacity, 3 * 10**9, seed=5)
                paced_webhook = asyncio.run(load(port, paced_requests, seconds, paced_rps))
            finally:
                stop(server)

            emulator_port = free_port()
            server = start_server(emulator_port, redis_url, sqs.start())
            try:
                requests, _ = build_requests(WEBHOOK_PATH, emulator_requests, 2 * 10**9, seed=4)
                emulator = asyncio.run(load(emulator_port, requests, 600))
                emulator["queued"] = queued_count(emulator_port)
            finally:
                stop(server)
        finally:
            sqs.stop()
            redis_server.stop()
    return {
        "bare": bare,
        "webhook": webhook,
        "emulator": emulator,
        "paced_bare": paced_bare,
        "paced_webhook": paced_webhook,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--paced-rps", type=int, default=1000, help="rate of the paced (unsaturated) phase")
    parser.add_argument("--emulator-requests", type=int, default=1500)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--sqs-endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.redis_url, args.sqs_endpoint)
        return
    figures = run(args.seconds, args.paced_rps, args.emulator_requests)
    bare, webhook, emulator = figures["bare"], figures["webhook"], figures["emulator"]
    print(
        json.dumps(
            {
                "benchmark": "ingress",
                "connections": CONNECTIONS,
                "duplicate_share": DUPLICATE_SHARE,
                "webhook_rps": webhook["rps"],
                "webhook_p50_ms": webhook["p50_ms"],
                "webhook_p99_ms": webhook["p99_ms"],
                "webhook_requests": webhook["requests"],
                "webhook_non_200": webhook["non_200"],
                "webhook_distinct_updates": webhook["distinct_updates_sent"],
                "webhook_queued": webhook["queued"],
                "bare_rps": bare["rps"],
                "bare_p50_ms": bare["p50_ms"],
                "bare_p99_ms": bare["p99_ms"],
                "throughput_ratio_webhook_to_bare": round(webhook["rps"] / bare["rps"], 2),
                "paced_rps": args.paced_rps,
                "paced_webhook_p50_ms": figures["paced_webhook"]["p50_ms"],
                "paced_webhook_p99_ms": figures["paced_webhook"]["p99_ms"],
                "paced_bare_p50_ms": figures["paced_bare"]["p50_ms"],
                "paced_bare_p99_ms": figures["paced_bare"]["p99_ms"],
                "goal_p99_ms_max": 10,
                "goal_throughput_ratio_min": 0.5,
                "emulator_webhook_rps": emulator["rps"],
                "emulator_webhook_p50_ms": emulator["p50_ms"],
                "emulator_webhook_p99_ms": emulator["p99_ms"],
                "emulator_requests": emulator["requests"],
                "emulator_non_200": emulator["non_200"],
                "emulator_queued": emulator["queued"],
            }
        )
    )


if __name__ == "__main__":
    main()
