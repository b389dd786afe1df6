"""Key formats exactly as ARCHITECTURE.md's Redis key table writes them."""

from __future__ import annotations

import datetime as dt

from tgops.cache import keys

GROUP = "15c3dc679712c9d8a8b27e52fc88056b7a55d9b5"  # sha1("12|https://t.me/example")


def test_group_key_is_the_sha1_of_service_id_bar_link() -> None:
    assert keys.group_key(12, "https://t.me/example") == GROUP


def test_key_formats() -> None:
    assert keys.webhook_dedupe(7, 123456) == "webhook:7:123456"
    assert keys.inspect_dispatch(GROUP) == f"tg:inspect:dispatch:{GROUP}"
    assert keys.validate_group(GROUP) == f"socpanel:validate-group:{GROUP}"
    assert keys.inspection(GROUP) == f"tg:inspection:{GROUP}"
    assert keys.mtproto_lock(42) == "tg:mtproto:lock:42"
    assert keys.proxy_throttle("0123abcd4567ef89:acct:42") == "tg:proxy:throttle:0123abcd4567ef89:acct:42"
    assert keys.reserve_lock("join", 42) == "tg:lock:join:42"
    assert keys.cooldown("join", 42) == "tg:cooldown:join:42"
    assert keys.daily_cap("join", 42, dt.date(2024, 3, 9)) == "tg:cap:join:42:2024-03-09"
    assert keys.daily_cap("join", 42, "2024-03-09") == "tg:cap:join:42:2024-03-09"
    assert keys.link_state("5d41402a", 42) == "tg:link_state:5d41402a:42"


def test_keys_beyond_the_architecture_table() -> None:
    assert keys.one_shot_dedupe("view", "5d41402a", 42) == "tg:dedupe:view:5d41402a:42"
    assert keys.rate_limit("dm", 1001) == "tg:ratelimit:dm:1001"
