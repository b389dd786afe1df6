"""The bot limiter's invariant, counted against a real Redis on a clock the test drives (no timings).

As Telegram sees it: no window of one second holds more of a lane's calls than its rate, and no chat
gets two calls closer than its spacing, wherever in its flight each call reaches Telegram: after the
limiter let it go (`try_depart`), before its answer came back (`arrived`). Consumers here wake late
for their slots and calls are slow on the wire, both at random, as on a loaded machine.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass

import pytest

from tgops.cache import keys
from tgops.config import Settings
from tgops.telegram.bot_client import Departure, Lane, Pacing, SendLimiter

BOT = "limiterbot"
START_MS = 1_000_000_000_000
RATE = 5
GROUP_SPACING_MS = 3000
IN_FLIGHT_MS = 30_000


@dataclass
class Call:
    chat_id: int | None
    slot: int
    woke: int = 0
    departed: int = 0
    answered: int = 0


def pacing() -> Pacing:
    return Pacing.from_settings(Settings(broadcast_rate_per_sec=RATE, broadcast_group_spacing_sec=3))


def limiter(redis_client) -> SendLimiter:
    return SendLimiter(redis_client, BOT, pacing(), in_flight_ms=IN_FLIGHT_MS)


async def simulate(
    limiter: SendLimiter, chats: list[int | None], *, consumers: int, late_ms, wire_ms, lane: Lane = Lane.BULK
) -> list[Call]:
    """`consumers` callers taking `chats` in turn, each: reserve, wake `late_ms()` after its slot, depart
    (asking again when told to wait), answered `wire_ms()` after it went. Events run in clock order."""
    queue = iter(chats)
    calls: list[Call] = []
    events: list[tuple[int, int, str, int, Call | None]] = []
    order = itertools.count()
    for consumer in range(consumers):
        heapq.heappush(events, (START_MS, next(order), "take", consumer, None))
    while events:
        now, _, step, consumer, call = heapq.heappop(events)
        if step == "take":
            chat = next(queue, "done")
            if chat == "done":
                continue
            call, step = Call(chat, slot=0), "reserve"
        if step == "reserve":
            reserved, wait = await limiter.try_reserve(lane, call.chat_id, now_ms=now)
            if reserved:
                call.slot = now + wait
                call.woke = call.slot + late_ms()
                heapq.heappush(events, (call.woke, next(order), "depart", consumer, call))
            else:
                heapq.heappush(events, (now + wait, next(order), "reserve", consumer, call))
        elif step == "depart":
            departure, wait = await limiter.try_depart(lane, call.chat_id, str(id(call)), now_ms=now)
            if departure is Departure.GO:
                call.departed = now
                heapq.heappush(events, (now + wire_ms(), next(order), "answered", consumer, call))
            else:
                heapq.heappush(events, (now + wait, next(order), "depart", consumer, call))
        elif step == "answered":
            await limiter.arrived(lane, call.chat_id, str(id(call)), now_ms=now)
            call.answered = now
            calls.append(call)
            heapq.heappush(events, (now, next(order), "take", consumer, None))
    return calls


def most_in_one_second_at_telegram(flights: list[tuple[int, int]]) -> int:
    """The most calls one window of 1000 ms (half-open) can hold at Telegram, each call arriving
    anywhere in its flight (from, to): the worst the network's jitter can do."""
    return max(
        sum(1 for start, end in flights if start < t + 1000 and end >= t) for t in {end for _, end in flights}
    )


def closest_at_telegram(calls: list[Call]) -> int:
    """The closest two successive calls to one chat can reach Telegram."""
    by_chat: dict[int | None, list[Call]] = {}
    for call in sorted(calls, key=lambda c: c.departed):
        by_chat.setdefault(call.chat_id, []).append(call)
    return min(b.departed - a.answered for chat in by_chat.values() for a, b in itertools.pairwise(chat))


def loaded(rng: random.Random):
    """A loaded machine: most wake-ups and answers prompt, some late by up to 300 ms."""
    return lambda: rng.choice([0, 0, 0, 1, 2, 5, rng.randint(0, 300)])


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_no_second_at_telegram_holds_more_than_the_rate_however_late_consumers_wake(redis_client, seed):
    rng = random.Random(seed)
    chats = [-100 - n for n in range(400)]

    calls = await simulate(
        limiter(redis_client), chats, consumers=4, late_ms=loaded(rng), wire_ms=loaded(rng)
    )

    assert len(calls) == len(chats)
    slots = [(call.slot, call.slot) for call in calls]
    assert most_in_one_second_at_telegram(slots) <= RATE  # the reservations alone keep the rate...
    gone_at_slot = [(call.woke, call.woke + call.answered - call.departed) for call in calls]
    assert most_in_one_second_at_telegram(gone_at_slot) > RATE  # ...but not once calls go late
    flights = [(call.departed, call.answered) for call in calls]
    assert most_in_one_second_at_telegram(flights) == RATE  # departures held to the limit, and no more


async def test_each_group_keeps_its_spacing_at_telegram_however_late_consumers_wake(redis_client):
    rng = random.Random(4)
    chats = [-100 - n % 3 for n in range(60)]  # 3 groups, so their spacing is what holds calls back

    calls = await simulate(
        limiter(redis_client), chats, consumers=4, late_ms=loaded(rng), wire_ms=loaded(rng)
    )

    assert len(calls) == len(chats)
    assert closest_at_telegram(calls) >= GROUP_SPACING_MS


async def test_calls_answered_within_the_margin_go_at_their_slots(redis_client):
    rng = random.Random(5)
    chats = [-100 - n for n in range(200)]

    calls = await simulate(
        limiter(redis_client), chats, consumers=4, late_ms=lambda: 0, wire_ms=lambda: rng.randint(1, 35)
    )

    assert [call.departed for call in calls] == [call.slot for call in calls]  # never held back
    first, last = min(c.slot for c in calls), max(c.slot for c in calls)
    assert (len(calls) - 1) * 1000 / (last - first) == pytest.approx(RATE / 1.04, rel=0.01)


async def test_the_priority_lane_keeps_its_own_window_and_never_waits_for_the_bulk_one(redis_client):
    rng = random.Random(6)
    bot = limiter(redis_client)
    await simulate(bot, [-1 - n for n in range(20)], consumers=4, late_ms=lambda: 0, wire_ms=lambda: 10_000)
    assert (await bot.try_depart(Lane.BULK, None, "bulk", now_ms=START_MS))[0] is Departure.WAIT  # full

    calls = await simulate(
        bot, [None] * 200, consumers=8, late_ms=loaded(rng), wire_ms=loaded(rng), lane=Lane.PRIORITY
    )

    window = pacing().priority_window
    assert (window.sends, window.ms) == (25, 1000)
    assert most_in_one_second_at_telegram([(c.departed, c.answered) for c in calls]) <= 25
    first = min(calls, key=lambda call: call.slot)
    assert first.slot == START_MS and first.departed == first.woke


async def test_a_call_never_answered_is_held_in_flight_only_as_long_as_a_call_can_last(redis_client):
    bot = limiter(redis_client)
    for n in range(RATE):  # five calls that go and are never answered (their consumer died)
        assert await bot.try_depart(Lane.BULK, None, f"lost-{n}", now_ms=START_MS) == (Departure.GO, 0)

    assert (await bot.try_depart(Lane.BULK, None, "next", now_ms=START_MS + 5_000))[0] is Departure.WAIT
    departure = await bot.try_depart(Lane.BULK, None, "next", now_ms=START_MS + IN_FLIGHT_MS + 1000)
    assert departure == (Departure.GO, 0)


async def test_a_429_pause_holds_a_departure_until_it_ends(redis_client):
    bot = limiter(redis_client)
    await bot.pause(2)

    departure, pause_left = await bot.try_depart(Lane.BULK, -1, "call", now_ms=START_MS)

    assert departure is Departure.PAUSED and 1000 < pause_left <= 2000
    assert await redis_client.pttl(keys.bot_lane_calls(BOT, Lane.BULK.value)) == -2  # nothing recorded
