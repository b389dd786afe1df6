import subprocess
import sys

import pytest
from telegram.error import NetworkError
from telethon import errors

from tests.fakes.bot_api_http import FakeBotApiHttp, error
from tests.fakes.mtproto_pool import *  # noqa: F403
from tgops.config import ServiceRule
from tgops.orders.link_inspector import Inspector
from tgops.orders.validation import judge
from tgops.telegram.bot_api import BotApiChats

CHANNEL = {
    "id": -1001234,
    "type": "channel",
    "title": "Durov's Channel",
    "username": "durov",
    "accent_color_id": 0,
    "max_reaction_count": 11,
    "join_by_request": True,
    "accepted_gift_types": {
        "unlimited_gifts": True,
        "limited_gifts": True,
        "unique_gifts": True,
        "premium_subscription": True,
        "gifts_from_channels": True,
    },
}


@pytest.fixture
def bot_http() -> FakeBotApiHttp:
    return FakeBotApiHttp()


@pytest.fixture
async def link_inspector(make_pool, add_accounts, bot_http) -> Inspector:
    await add_accounts(2)
    return Inspector(mtproto=make_pool(), bot_api=BotApiChats("123:secret", request=bot_http))


async def test_public_channel_is_answered_by_the_bot_api_without_spending_an_account(
    link_inspector, bot_http, telegram
):
    bot_http.answer("getChat", CHANNEL)
    bot_http.answer("getChatMemberCount", 4321)

    result = await link_inspector.inspect("https://t.me/Durov")

    assert result.model_dump(exclude_none=True) == {
        "ok": True,
        "exists": True,
        "link_kind": "public",
        "chat_type": "channel",
        "title": "Durov's Channel",
        "username": "durov",
        "participants_count": 4321,
        "is_private": False,
        "join_request": True,
        "is_bot": False,
        "retryable": False,
    }
    assert telegram.calls == []


@pytest.mark.parametrize(
    "bot_api_failure",
    [
        error(400, "Bad Request: chat not found"),
        error(429, "Too Many Requests", retry_after=30),
        NetworkError("connection reset"),
    ],
    ids=["not_found", "retry_after", "network"],
)
async def test_public_names_fall_back_to_mtproto_when_the_bot_api_cannot_answer(
    link_inspector, bot_http, telegram, bot_api_failure
):
    bot_http.answer("getChat", bot_api_failure)
    telegram.add_channel("somegroup", megagroup=True, participants=77)

    result = await link_inspector.inspect("@somegroup")

    assert (result.ok, result.exists, result.chat_type, result.participants_count) == (
        True,
        True,
        "supergroup",
        77,
    )
    assert len(telegram.calls) == 1


async def test_a_post_is_checked_through_mtproto_which_can_see_whether_it_exists(
    link_inspector, telegram, bot_http
):
    telegram.add_channel("news", participants=900, posts=40)

    kept = await link_inspector.inspect("https://t.me/news/40")
    deleted = await link_inspector.inspect("https://t.me/news/41")

    assert (kept.ok, kept.exists, kept.link_kind, kept.chat_type, kept.participants_count) == (
        True,
        True,
        "post",
        "channel",
        900,
    )
    assert (deleted.ok, deleted.exists, deleted.error_code, deleted.retryable) == (
        True,
        False,
        "POST_NOT_FOUND",
        False,
    )
    assert deleted.reason == "post 41 of @news does not exist"
    assert [call.request for call in telegram.calls] == ["ResolveUsernameRequest", "GetMessagesRequest"] * 2
    assert bot_http.requests == []  # the Bot API cannot read a channel's posts


async def test_a_post_link_to_a_user_is_a_definite_no(link_inspector, telegram):
    telegram.add_user("annsmith")

    result = await link_inspector.inspect("t.me/annsmith/3")

    assert (result.ok, result.exists, result.error_code) == (True, False, "POST_NOT_FOUND")
    assert result.reason == "@annsmith is a user, not a channel with posts"


async def test_a_post_of_a_missing_channel_is_a_definite_no(link_inspector):
    result = await link_inspector.inspect("t.me/nobodyatall/3")

    assert (result.ok, result.exists, result.error_code) == (True, False, "USERNAME_NOT_OCCUPIED")


async def test_a_user_name_is_resolved_through_mtproto(link_inspector, telegram):
    telegram.add_user("annsmith", first_name="Ann")

    result = await link_inspector.inspect("t.me/annsmith")

    assert (result.ok, result.chat_type, result.title, result.is_bot) == (True, "user", "Ann", False)


async def test_unknown_names_are_a_definite_no(link_inspector):
    result = await link_inspector.inspect("https://t.me/nobodyatall")

    assert (result.ok, result.exists, result.error_code, result.retryable) == (
        True,
        False,
        "USERNAME_NOT_OCCUPIED",
        False,
    )


async def test_bot_links_report_the_bot_flag(link_inspector, telegram, bot_http):
    telegram.add_user("pricebot", bot=True)
    telegram.add_user("fakebot_user_bot", bot=False)

    real = await link_inspector.inspect("https://t.me/pricebot?start=x")
    fake = await link_inspector.inspect("@fakebot_user_bot")

    assert (real.link_kind, real.chat_type, real.is_bot) == ("bot", "bot", True)
    assert (fake.ok, fake.is_bot) == (True, False)
    assert bot_http.requests == []  # bots are not asked through the Bot API


async def test_invites_are_checked_with_check_chat_invite(link_inspector, telegram):
    telegram.add_invite("AbCdEf_-123", title="Club", request_needed=True, paid=True, participants=12)

    result = await link_inspector.inspect("https://t.me/joinchat/AbCdEf_-123")

    assert (result.ok, result.exists, result.chat_type, result.title) == (True, True, "channel", "Club")
    assert (result.is_private, result.join_request, result.paid, result.participants_count) == (
        True,
        True,
        True,
        12,
    )


async def test_expired_invites_are_a_definite_no(link_inspector):
    result = await link_inspector.inspect("t.me/+ZZZZZZZZ")

    assert (result.ok, result.exists, result.error_code) == (True, False, "INVITE_HASH_EXPIRED")


async def test_temporary_pool_failures_are_retryable(link_inspector, telegram, sessions):
    for session in sessions.values():
        telegram.fail_next(session, errors.FloodWaitError(request=None, capture=300))
    telegram.add_channel("busychannel")

    result = await link_inspector.inspect("t.me/busychannel")

    assert (result.ok, result.retryable, result.error_code) == (False, True, "NO_AVAILABLE_ACCOUNTS")


@pytest.mark.parametrize(
    "link", ["", "   ", "https://example.com/x", "t.me/+", "tg://msg", "\x00", "t.me/c/1"]
)
async def test_malformed_links_never_crash_and_spend_nothing(link_inspector, telegram, bot_http, link):
    result = await link_inspector.inspect(link)

    assert not result.exists and result.reason and not result.retryable
    assert telegram.calls == [] and bot_http.requests == []


def test_importing_the_inspector_loads_no_worker_library():
    code = "import sys, tgops.orders.link_inspector, tgops.orders.inspection_result; print('telethon' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )


@pytest.mark.parametrize("peek", [False, True], ids=["already_joined", "peek"])
async def test_an_invite_the_probe_account_joined_gets_its_member_count_from_the_full_channel(
    link_inspector, telegram, peek
):
    telegram.add_joined_invite(
        "AbCdEf_-123", peek=peek, title="Club", participants=None, full_participants=321
    )

    result = await link_inspector.inspect("https://t.me/+AbCdEf_-123")

    assert (result.ok, result.exists, result.link_kind, result.chat_type, result.title) == (
        True,
        True,
        "invite",
        "channel",
        "Club",
    )
    assert (result.participants_count, result.is_private) == (321, True)
    assert [call.request for call in telegram.calls] == ["CheckChatInviteRequest", "GetFullChannelRequest"]


@pytest.mark.parametrize("username", ["BotFather", "gif"])
async def test_a_bot_is_judged_by_the_resolved_peer_not_its_name(link_inspector, telegram, username):
    telegram.add_user(username, bot=True)

    result = await link_inspector.inspect(f"https://t.me/{username}")

    assert (result.ok, result.link_kind, result.chat_type, result.is_bot) == (True, "bot", "bot", True)


async def test_a_channel_whose_name_ends_in_bot_is_a_public_link(link_inspector, telegram):
    telegram.add_channel("robot_news_bot")

    result = await link_inspector.inspect("https://t.me/robot_news_bot")

    assert (result.ok, result.link_kind, result.chat_type, result.is_bot) == (
        True,
        "public",
        "channel",
        False,
    )


async def test_a_service_for_bots_takes_a_bot_named_otherwise(link_inspector, telegram):
    telegram.add_user("BotFather", bot=True)

    verdict = judge(
        await link_inspector.inspect("@BotFather"), ServiceRule(link_kinds=["bot"], bot="required")
    )

    assert verdict.status == "depends_ok", verdict.reason
