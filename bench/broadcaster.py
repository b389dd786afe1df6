"""Broadcaster and join-request benchmark against a fake Bot API server over real HTTP.

    python bench/broadcaster.py [--groups 1000] [--parts abcd] [--stall-ms 0]

Real Postgres and Redis (tgops.local.services); the Bot API is tests/fakes/bot_api_server.py on
127.0.0.1 in a process of its own (so the times it records are not held up by the consumers' event
loop), reached through python-telegram-bot and the tgops limiter, exactly as in production.
4 concurrent consumers run the real queue handlers, fed by an in-process queue (a standard queue for
group_message_queue, per-chat FIFO groups for tgms_queue); a job fans out to all 4
(`broadcast_parallelism` 4). Settings are the defaults: 5 msg/s, 3 s per group.

(a) one job to N groups: achieved send rate ÷ configured rate (goal >= 0.95);
(b) one job to N other groups, 1% of calls answered 429 retry_after 1 s and 3% of the groups kicking
    the bot (403): completion time ÷ (N ÷ rate) (goal <= 1.15), messages lost and duplicated (goal 0);
(c) over every send of (a), (b) and two concurrent jobs to the same 20 groups: one-second windows
    holding more sends than the configured rate, and sends to a group closer than 3 s (goal 0 each).
    Strict: every sendMessage/sendPhoto that reached the fake server, whatever its answer, at the time
    the server read it; a window starts at each send and is one second long, half-open. Printed with
    the same counts at the times the client handed each request to HTTP (`_at_client`) and the
    transit between the two (`c_transit_ms_*`), which no client can see or control. Slots alone (208 ms
    apart at the defaults) break a window whenever a send reaches the server over 40 ms later,
    relative to the fifth send after it, than that one does; the limiter therefore counts each send
    at the latest it can have arrived (its answer), and the strict figure holds whatever the transit;
(d) a burst of 1,000 join requests over 50 groups (growth phase: approve, 1 decision/s per group):
    each decided exactly once, approval p95 ÷ the pacing bound, the larger of the per-group bound
    (requests per group - 1 seconds) and the bot's priority lane (1,000 ÷ its rate per second);
    goal p95 <= bound + 5 s.

At the defaults (a) and (b) take N ÷ 5 s each: about 7 minutes for 1,000 groups. Ends with one JSON line.
For quicker runs, `--groups` sizes (a) and (b) and `--parts` picks the parts ((c) then counts the
sends of the parts run). `--stall-ms S` blocks the consumers' event loop for up to S ms at random
moments (a loaded machine, on the client side) to show what the limiter holds under it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import multiprocessing
import random
import statistics
import sys
import time
from collections import Counter, defaultdict, deque
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
from telegram.request import HTTPXRequest
from ulid import ULID

from tgops.broadcast.consumer import handle as broadcast_handle
from tgops.broadcast.jobs import BroadcastJob, TextContent
from tgops.config import Settings
from tgops.db.migrate import apply_migrations
from tgops.groups.consumer import handle as group_handle
from tgops.ingress.messages import TelegramUpdateReceived
from tgops.local.services import throwaway_postgres_and_redis
from tgops.messaging.envelopes import encode
from tgops.messaging.sqs import Received
from tgops.runtime import Runtime
from tgops.telegram.bot_client import Pacing

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "987654321:BenchOnlyTokenNotRealAtAll_abcdefghijk"
CONSUMERS = 4
FLOOD_SHARE, KICKED_SHARE = 0.01, 0.03
CONTENTION_GROUPS = 20
JOIN_REQUESTS, JOIN_GROUPS = 1000, 50
FIFO_BATCH = 10
SEND_METHODS = ("sendMessage", "sendPhoto")


class RemoteFake:
    """The fake Bot API server in a process of its own, as Telegram is: its arrival times are not
    delayed by this process's event loop or GIL. Calls and error policy go over a pipe."""

    def __init__(self, module) -> None:
        self._module = module
        self._conn, child = multiprocessing.Pipe()
        self._process = multiprocessing.Process(target=serve_fake, args=(child,), daemon=True)
        self._process.start()
        self.base_url = self._conn.recv()

    def _ask(self, command: str, argument: Any = None) -> Any:
        self._conn.send((command, argument))
        return self._conn.recv()

    @property
    def calls(self) -> list[Any]:
        return [self._module.Call(*row) for row in self._ask("calls")]

    def calls_to(self, method: str) -> list[Any]:
        return [call for call in self.calls if call.method == method]

    def delivered(self) -> list[Any]:
        return [c for c in self.calls if c.method in SEND_METHODS and c.status == 200]

    def sends(self) -> list[Any]:
        """Every send that reached the server, whatever it answered."""
        return [c for c in self.calls if c.method in SEND_METHODS]

    def set_policy(self, kicked: set[int] | None, flood_share: float = 0.0) -> None:
        self._ask("policy", (sorted(kicked) if kicked is not None else None, flood_share))

    def stop(self) -> None:
        self._ask("stop")
        self._process.join(5)


def serve_fake(conn) -> None:
    module = load_fake()
    fake = module.FakeBotApi().start()
    conn.send(fake.base_url)
    rng = random.Random(7)
    while True:
        command, argument = conn.recv()
        if command == "calls":
            with fake._lock:
                rows = [(c.token, c.method, c.params, c.at, c.status) for c in fake.calls]
            conn.send(rows)
        elif command == "policy":
            kicked, flood_share = argument
            fake.policy = None if kicked is None else _error_policy(module, set(kicked), flood_share, rng)
            conn.send(True)
        else:
            fake.stop()
            conn.send(True)
            return


def _error_policy(module, kicked: set[int], flood_share: float, rng: random.Random):
    def policy(token, method, params):
        if method != "sendMessage":
            return None
        if params.get("chat_id") in kicked:
            return module.kicked()
        if rng.random() < flood_share:
            return module.too_many_requests(1)
        return None

    return policy


def load_fake():
    path = ROOT / "tests" / "fakes" / "bot_api_server.py"
    spec = importlib.util.spec_from_file_location("fake_bot_api_server", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class LocalQueues:
    """The queue sender the handlers see: group_message_queue as one queue, tgms_queue as FIFO groups."""

    def __init__(self) -> None:
        self.broadcast: asyncio.Queue[str] = asyncio.Queue()
        self.fifo: dict[str, deque[str]] = defaultdict(deque)
        self.ready: asyncio.Queue[str] = asyncio.Queue()
        self.busy: set[str] = set()
        self.enqueued_at: dict[tuple[int, int], float] = {}

    async def send(self, queue: str, body: str, *, group_id=None, dedup_id=None, delay_sec: int = 0) -> str:
        if queue == "group_message_queue":
            await self.broadcast.put(body)
        else:
            self.put_fifo(group_id, body)
        return str(ULID())

    def put_fifo(self, group_id: str, body: str) -> None:
        self.fifo[group_id].append(body)
        if group_id not in self.busy:
            self.busy.add(group_id)
            self.ready.put_nowait(group_id)


def received(body: str) -> Received:
    return Received(message_id=str(ULID()), receipt_handle="bench", body=body, receive_count=1)


async def broadcast_consumer(runtime: Runtime, queues: LocalQueues) -> None:
    while True:
        body = await queues.broadcast.get()
        try:
            await broadcast_handle(runtime, received(body))
        except Exception:
            logging.getLogger("bench").exception("broadcast message failed; it comes back")
            await queues.broadcast.put(body)
        finally:
            queues.broadcast.task_done()


async def group_consumer(runtime: Runtime, queues: LocalQueues) -> None:
    while True:
        group_id = await queues.ready.get()
        messages = queues.fifo[group_id]
        for _ in range(min(FIFO_BATCH, len(messages))):
            await group_handle(runtime, received(messages.popleft()))
        if messages:
            queues.ready.put_nowait(group_id)
        else:
            queues.busy.discard(group_id)


def add_groups(url: str, chat_ids: list[int]) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("UPDATE managed_groups SET is_active = false")
        with connection.cursor() as cursor:
            cursor.executemany("INSERT INTO managed_groups (chat_id) VALUES (%s)", [(c,) for c in chat_ids])


def job_done(url: str, job_id: str) -> bool:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT status FROM broadcast_jobs WHERE job_id = %s", (job_id,)).fetchone()
    return bool(row and row[0] == "done")


async def run_job(url: str, queues: LocalQueues, job: BroadcastJob) -> float:
    started = time.monotonic()
    await queues.broadcast.put(encode(job))
    while not job_done(url, job.job_id):
        await asyncio.sleep(0.2)
    return time.monotonic() - started


class ClientSendTimes:
    """When the consumers hand each send to HTTP (python-telegram-bot's HTTPXRequest), per chat."""

    def __init__(self) -> None:
        self.times: list[tuple[int, float]] = []
        original = HTTPXRequest.do_request
        recorder = self

        async def do_request(self, url, method, request_data=None, *args, **kwargs):
            if url.rsplit("/", 1)[-1] in SEND_METHODS and request_data is not None:
                recorder.times.append((request_data.parameters.get("chat_id"), time.time()))
            return await original(self, url, method, request_data, *args, **kwargs)

        HTTPXRequest.do_request = do_request


async def stall_the_loop(max_ms: float, rng: random.Random) -> None:
    """A loaded machine as the consumers see it: now and then their event loop does not run."""
    while True:
        await asyncio.sleep(rng.uniform(0.2, 0.6))
        time.sleep(rng.uniform(0, max_ms) / 1000)  # blocking on purpose


def transit_ms(arrivals: list[Any], departures: list[tuple[int, float]]) -> list[float]:
    """Server arrival minus client hand-off, pairing each chat's sends in order."""
    sent = defaultdict(list)
    for chat, at in departures:
        sent[chat].append(at)
    seen = defaultdict(list)
    for call in arrivals:
        seen[call.chat_id].append(call.at)
    return sorted(
        (arrived - left) * 1000
        for chat, times in seen.items()
        for arrived, left in zip(sorted(times), sorted(sent[chat]), strict=False)
    )


def windows_above(times: list[float], limit: float) -> int:
    """One-second windows (one starting at each send) that hold more sends than `limit`."""
    times = sorted(times)
    over, end = 0, 0
    for start, at in enumerate(times):
        while end < len(times) and times[end] - at < 1.0:
            end += 1
        over += (end - start) > limit
    return over


def spacing_violations(calls: list[Any], spacing_sec: float) -> int:
    by_chat = defaultdict(list)
    for call in calls:
        by_chat[call.chat_id].append(call.at)
    return sum(
        1
        for times in by_chat.values()
        for a, b in zip(sorted(times), sorted(times)[1:], strict=False)
        if b - a < spacing_sec
    )


def join_request(chat_id: int, user_id: int) -> TelegramUpdateReceived:
    update = {
        "update_id": user_id,
        "chat_join_request": {
            "chat": {"id": chat_id, "type": "supergroup", "title": "bench"},
            "from": {"id": user_id, "is_bot": False, "first_name": "u"},
            "user_chat_id": user_id,
            "date": int(time.time()),
        },
    }
    return TelegramUpdateReceived(bot_id=0, update_id=user_id, update_type="chat_join_request", update=update)


async def main(groups: int, parts: str, stall_ms: float) -> None:
    logging.basicConfig(level=logging.ERROR)
    fake_module = load_fake()
    rng = random.Random(13)
    client_times = ClientSendTimes()
    figures: dict[str, Any] = {"benchmark": "broadcaster", "groups": groups, "consumers": CONSUMERS}
    if parts != "abcd" or stall_ms:
        figures |= {"parts": parts, "stall_ms": stall_ms}
    with throwaway_postgres_and_redis() as (postgres, redis_server):
        url = postgres.url()
        apply_migrations(url)
        fake = RemoteFake(fake_module)
        settings = Settings(
            database_url=url,
            redis_url=redis_server.url(),
            telegram_bot_token=TOKEN,
            telegram_bot_api_base_url=fake.base_url,
            broadcast_parallelism=CONSUMERS,
            database_pool_max=20,
        )
        queues = LocalQueues()
        runtime = Runtime(settings, queue_sender=queues)
        workers = [asyncio.create_task(broadcast_consumer(runtime, queues)) for _ in range(CONSUMERS)]
        workers += [asyncio.create_task(group_consumer(runtime, queues)) for _ in range(CONSUMERS)]
        if stall_ms:
            workers.append(asyncio.create_task(stall_the_loop(stall_ms, random.Random(17))))
        rate = settings.broadcast_rate_per_sec
        figures["configured_rate_per_sec"] = rate
        content = TextContent(type="text", text="We are live: join now")

        if "a" in parts:  # no failures
            a_chats = [-1_000_000_000 - n for n in range(groups)]
            add_groups(url, a_chats)
            await run_job(url, queues, BroadcastJob(content=content))
            a_calls = [c for c in fake.delivered() if c.chat_id in set(a_chats)]
            a_times = sorted(c.at for c in a_calls)
            achieved = (len(a_times) - 1) / (a_times[-1] - a_times[0])
            figures |= {
                "a_sends": len(a_calls),
                "a_achieved_rate_per_sec": round(achieved, 3),
                "a_achieved_over_configured": round(achieved / rate, 3),
            }

        if "b" in parts:  # 1% 429, 3% kicked
            b_chats = [-2_000_000_000 - n for n in range(groups)]
            kicked = set(rng.sample(b_chats, round(groups * KICKED_SHARE)))
            add_groups(url, b_chats)
            mark = len(fake.calls)
            fake.set_policy(kicked, FLOOD_SHARE)
            b_sec = await run_job(url, queues, BroadcastJob(content=content))
            fake.set_policy(None)
            b_delivered = Counter(c.chat_id for c in fake.delivered() if c.chat_id in set(b_chats))
            expected = set(b_chats) - kicked
            figures |= {
                "b_completion_sec": round(b_sec, 1),
                "b_ideal_sec": groups / rate,
                "b_completion_over_ideal": round(b_sec / (groups / rate), 3),
                "b_429s": sum(1 for c in fake.calls[mark:] if c.status == 429),
                "b_kicked_groups": len(kicked),
                "b_lost": len(expected - set(b_delivered)),
                "b_duplicates": sum(count - 1 for count in b_delivered.values() if count > 1),
            }

        if "c" in parts:  # two jobs at once to the same groups
            c_chats = [-3_000_000_000 - n for n in range(CONTENTION_GROUPS)]
            add_groups(url, c_chats)
            await asyncio.gather(
                run_job(url, queues, BroadcastJob(content=content)),
                run_job(url, queues, BroadcastJob(content=content)),
            )
        sends = fake.sends()
        departures = list(client_times.times)
        group_spacing = max(settings.broadcast_group_spacing_sec, 3.0)
        transits = transit_ms(sends, departures)
        figures |= {
            "c_sends_checked": len(sends),
            "c_windows_above_rate": windows_above([c.at for c in sends], rate),
            "c_group_spacing_violations": spacing_violations(sends, group_spacing),
            "c_windows_above_rate_at_client": windows_above([at for _, at in departures], rate),
            "c_group_spacing_violations_at_client": spacing_violations(
                [SimpleNamespace(chat_id=chat, at=at) for chat, at in departures], group_spacing
            ),
            "c_transit_ms_p50": round(statistics.median(transits), 1) if transits else None,
            "c_transit_ms_p99": round(statistics.quantiles(transits, n=100)[98], 1)
            if len(transits) > 1
            else None,
            "c_transit_ms_max": round(transits[-1], 1) if transits else None,
        }

        if "d" in parts:  # join requests
            figures |= await join_request_burst(settings, url, queues, fake, rng)

        for worker in workers:
            worker.cancel()
        for worker in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        await runtime.close()
        fake.stop()

    print(json.dumps(figures))


async def join_request_burst(
    settings: Settings, url: str, queues: LocalQueues, fake: RemoteFake, rng
) -> dict:
    d_chats = [-4_000_000_000 - n for n in range(JOIN_GROUPS)]
    add_groups(url, d_chats)
    burst = [(chat, 10_000 + n) for n in range(JOIN_REQUESTS) for chat in [d_chats[n % JOIN_GROUPS]]]
    rng.shuffle(burst)
    burst_at = time.time()
    for chat, user in burst:
        update = join_request(chat, user)
        queues.put_fifo(f"0:{chat}", encode(update))
    while len(fake.calls_to("approveChatJoinRequest")) < JOIN_REQUESTS and time.time() - burst_at < 600:
        await asyncio.sleep(1)
    await asyncio.sleep(2)  # anything decided twice would show by now
    approvals = fake.calls_to("approveChatJoinRequest")
    decided = Counter((c.chat_id, c.params["user_id"]) for c in approvals)
    latencies = sorted(c.at - burst_at for c in approvals)
    p95 = statistics.quantiles(latencies, n=100)[94] if len(latencies) > 1 else None
    per_group_bound = (JOIN_REQUESTS / JOIN_GROUPS - 1) * settings.group_decision_interval_sec
    priority_rate = 1000 / Pacing.from_settings(settings).priority_interval_ms
    lane_bound = JOIN_REQUESTS / priority_rate
    pacing_bound = max(per_group_bound, lane_bound)
    return {
        "d_join_requests": JOIN_REQUESTS,
        "d_groups": JOIN_GROUPS,
        "d_decided_once": sum(1 for n in decided.values() if n == 1),
        "d_decided_twice_or_more": sum(1 for n in decided.values() if n > 1),
        "d_undecided": JOIN_REQUESTS - len(decided),
        "d_approval_p95_sec": round(p95, 2) if p95 is not None else None,
        "d_pacing_bound_sec": round(pacing_bound, 1),
        "d_per_group_bound_sec": round(per_group_bound, 1),
        "d_priority_lane_bound_sec": round(lane_bound, 1),
        "d_p95_minus_bound_sec": round(p95 - pacing_bound, 2) if p95 is not None else None,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=1000, help="groups in (a) and (b); default 1000")
    parser.add_argument("--parts", default="abcd", help="which of a, b, c, d to run; default all")
    parser.add_argument("--stall-ms", type=float, default=0, help="random event-loop stalls up to this long")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.groups, arguments.parts, arguments.stall_ms))
