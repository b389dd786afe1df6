"""Nothing queued is lost when `tgops dev` stops with Ctrl-C, or dies with `kill -9` (its Postgres too).

The test is a producer and a consumer of the running stack's queues: it reaches them as a command run
beside `tgops dev` does (the database URL from `.tgops/dev.json`) and leaves messages queued, delayed,
in flight (holding their receipt handles), queued behind an in-flight one of their FIFO group, and
dead-lettered. It uses queue names of its own (prefix `restart-`) in the same tables, so the stack's
consumers, which would rightly take visible messages of their own queues, leave them where the test
put them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tgops.config import Settings
from tgops.local.dev import EmbeddedServices
from tgops.local.services import free_port
from tgops.messaging.pg_queues import PgQueues
from tgops.messaging.topology import DM, GROUP_MESSAGE, INSPECT, MAX_RECEIVE_COUNT, SETUP_FAST, SETUP_MEDIA

TGOPS = Path(sys.executable).parent / "tgops"
PREFIX = "restart-"
HELD_SEC = 600  # in flight for longer than the test runs
EMPTY = {"visible": 0, "in_flight": 0, "delayed": 0}
LEFT_DEPTHS = {
    INSPECT.name: {"visible": 2, "in_flight": 0, "delayed": 0},
    GROUP_MESSAGE.name: {"visible": 0, "in_flight": 0, "delayed": 1},
    SETUP_FAST.name: {"visible": 0, "in_flight": 1, "delayed": 0},
    DM.name: {"visible": 2, "in_flight": 1, "delayed": 0},  # two queued behind the one in flight
    SETUP_MEDIA.name: EMPTY,
    SETUP_MEDIA.dlq_name: {"visible": 1, "in_flight": 0, "delayed": 0},
}


@dataclass
class LeftBehind:
    queued: dict[str, str] = field(default_factory=dict)  # message id -> body
    delayed_id: str = ""
    held_id: str = ""
    held_handle: str = ""
    fifo_head_handle: str = ""
    fifo_rest: list[str] = field(default_factory=list)
    dead_id: str = ""


def _clean_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("TGOPS_", "AWS_"))}
    return env | extra


def _start(cwd: Path, port: int, log: Path) -> subprocess.Popen:
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            [str(TGOPS), "dev"],
            cwd=cwd,
            env=_clean_env(TGOPS_API_PORT=str(port)),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so kill -9 can take its whole process group (Redis too)
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"tgops dev did not come up:\n{log.read_text()}")


def _interrupt(process: subprocess.Popen, log: Path) -> None:
    process.send_signal(signal.SIGINT)
    try:
        assert process.wait(timeout=30) == 0, log.read_text()
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise


def _crash(process: subprocess.Popen, pgdata: Path) -> None:
    """kill -9 of `tgops dev` and of every process of its embedded Postgres, as a power cut would."""
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    postgres = [postmaster, *_children(postmaster)]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    for pid in postgres:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in postgres) and time.monotonic() < deadline:
        time.sleep(0.1)


def _children(parent: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            children.append(int(stat.parent.name))
    return children


def _queues(cwd: Path) -> PgQueues:
    state = json.loads((cwd / ".tgops" / "dev.json").read_text())
    assert state["TGOPS_QUEUE_BACKEND"] == "postgres", state
    return PgQueues(state["TGOPS_DATABASE_URL"], queue_prefix=PREFIX)


async def _leave_messages(queues: PgQueues) -> LeftBehind:
    left = LeftBehind()
    queues.ensure_queues()
    for body in ("broadcast 1", "broadcast 2"):
        left.queued[await queues.send(INSPECT.name, body)] = body
    left.delayed_id = await queues.send(GROUP_MESSAGE.name, "in 15 minutes", delay_sec=900)

    left.held_id = await queues.send(SETUP_FAST.name, "being set up")
    [held] = await queues.receive(SETUP_FAST.name, wait_time_sec=0, visibility_timeout_sec=HELD_SEC)
    left.held_handle = held.receipt_handle

    for number in range(3):
        await queues.send(DM.name, f"chat-1 update {number}", group_id="chat-1", dedup_id=f"u{number}")
    [head] = await queues.receive(DM.name, wait_time_sec=0, max_messages=1, visibility_timeout_sec=HELD_SEC)
    left.fifo_head_handle, left.fifo_rest = head.receipt_handle, ["chat-1 update 1", "chat-1 update 2"]

    left.dead_id = await queues.send(SETUP_MEDIA.name, "poison")
    for _ in range(MAX_RECEIVE_COUNT):
        await queues.receive(SETUP_MEDIA.name, wait_time_sec=0, visibility_timeout_sec=0)
    assert await queues.receive(SETUP_MEDIA.name, wait_time_sec=0) == []  # the 4th moves it to the DLQ

    assert _depths(queues) == LEFT_DEPTHS
    await queues.aclose()
    return left


def _depths(queues: PgQueues) -> dict[str, dict[str, int]]:
    depths = queues.approximate_depths()
    return {queue: depths[queue] for queue in LEFT_DEPTHS}


async def _find_them_all(queues: PgQueues, left: LeftBehind) -> None:
    """Everything where it was, and it still works: held handles, FIFO blocking, deduplication."""
    try:
        assert _depths(queues) == LEFT_DEPTHS
        assert await queues.receive(DM.name, wait_time_sec=0) == []  # chat-1's head is still in flight
        await queues.send(DM.name, "a duplicate", group_id="chat-1", dedup_id="u2")  # dropped: still known
        await queues.change_visibility(SETUP_FAST.name, left.held_handle, HELD_SEC)  # the handle works
        assert _depths(queues) == LEFT_DEPTHS
    finally:
        await queues.aclose()


async def _drain(queues: PgQueues, left: LeftBehind) -> None:
    try:
        queued = await queues.receive(INSPECT.name, wait_time_sec=0)
        assert {message.message_id: message.body for message in queued} == left.queued
        await queues.delete(SETUP_FAST.name, left.held_handle)
        await queues.delete(DM.name, left.fifo_head_handle)
        rest = await queues.receive(DM.name, wait_time_sec=0)
        assert [message.body for message in rest] == left.fifo_rest
        [dead] = await queues.receive(SETUP_MEDIA.dlq_name, wait_time_sec=0)
        assert (dead.message_id, dead.body, dead.receive_count) == (left.dead_id, "poison", 4)
        assert queues.depth(GROUP_MESSAGE.name) == {"visible": 0, "in_flight": 0, "delayed": 1}
        assert queues.depth(SETUP_FAST.name) == EMPTY
    finally:
        await queues.aclose()


def test_queued_in_flight_and_dead_lettered_messages_survive_ctrl_c_and_kill_9(tmp_path):
    port, log = free_port(), tmp_path / "dev.log"
    pgdata = tmp_path / ".tgops" / "postgres" / "pgdata"

    process = _start(tmp_path, port, log)
    try:
        left = asyncio.run(_leave_messages(_queues(tmp_path)))
    finally:
        _interrupt(process, log)

    process = _start(tmp_path, port, log)
    try:
        asyncio.run(_find_them_all(_queues(tmp_path), left))
    except BaseException:
        _interrupt(process, log)
        raise
    _crash(process, pgdata)

    process = _start(tmp_path, port, log)
    try:
        asyncio.run(_find_them_all(_queues(tmp_path), left))
        asyncio.run(_drain(_queues(tmp_path), left))
    finally:
        _interrupt(process, log)
    assert "queues: durable, in Postgres" in log.read_text()


def test_tgops_dev_uses_postgres_queues_unless_an_sqs_endpoint_or_backend_is_set():
    configured = {
        "database_url": "postgresql://postgres@127.0.0.1:1/postgres",
        "redis_url": "redis://127.0.0.1:1/0",
        "panel_base_url": "http://127.0.0.1:1",
    }

    def started(**settings) -> dict[str, str]:
        return EmbeddedServices(Settings(_env_file=None, **configured, **settings)).start()

    assert started() == {"TGOPS_QUEUE_BACKEND": "postgres"}
    assert started(sqs_endpoint_url="http://127.0.0.1:4566") == {}
    assert started(queue_backend="sqs") == {}
