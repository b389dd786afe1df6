"""The whole flow on the real inspector: fake panel → poll_orders → tg-inspect (moto SQS) → the inspect
worker → MtprotoPool over a simulated Telegram (Telethon's real types and errors) → provider_orders."""

from __future__ import annotations

import asyncio

from moto import mock_aws
from pydantic import SecretStr

from tests.fakes.mtproto_pool import *  # noqa: F403
from tests.fakes.panel_server import FakePanel
from tests.helpers.emf import enable_metrics, totals
from tgops.config import PLACEHOLDER, ServiceRule
from tgops.orders.panel import HttpPanel
from tgops.orders.polling import OrderPoller
from tgops.runtime import Runtime
from tgops.workers import inspect as inspect_worker

PANEL_KEY = "panel-key"


async def test_panel_orders_end_depends_ok_or_depends_failed_through_the_worker(
    pool_settings, db, add_accounts, telegram, monkeypatch, capsys
):
    enable_metrics(monkeypatch)
    telegram.add_channel("good_channel", title="Good")
    telegram.add_invite("AbCdEf123456", title="Secret club")
    await add_accounts(2)
    with FakePanel(api_key=PANEL_KEY) as panel, mock_aws():
        settings = pool_settings.model_copy(
            update={
                "panel_base_url": panel.url,
                "panel_api_key": SecretStr(PANEL_KEY),
                "dispatch_jitter_max_sec": 0,
                "telegram_bot_token": SecretStr(PLACEHOLDER),  # no Bot API: every lookup goes through MTProto
                "order_service_rules": {5: ServiceRule(visibility="public")},
            }
        )
        private_for_public_service = panel.place_order("https://t.me/+AbCdEf123456", service_id=5)
        orders = {
            panel.place_order("https://t.me/good_channel", service_id=1): "awaiting",  # validated and started
            panel.place_order("@Good_Channel", service_id=1): "awaiting",  # validated and started
            panel.place_order("t.me/nobody_here", service_id=1): "depends_failed",
            panel.place_order("https://example.com/not_telegram", service_id=1): "depends_failed",
            private_for_public_service: "depends_failed",
            panel.place_order(
                "https://t.me/+AbCdEf123456", service_id=6
            ): "awaiting",  # validated and started
        }
        runtime = Runtime(settings)
        runtime.queues().ensure_queues()
        http_panel = HttpPanel.from_settings(settings)
        report = await OrderPoller(settings, db, runtime.redis(), runtime.queues(), http_panel).poll()
        await http_panel.aclose()
        assert report.dispatched == 4

        async def statuses() -> dict[int, str]:
            rows = [
                await db.fetch_one("provider_order_by_remote_id", {"remote_order_id": rid}) for rid in orders
            ]
            return {row["remote_order_id"]: row["status"] for row in rows}

        stop = asyncio.Event()
        serving = asyncio.create_task(
            inspect_worker.serve(runtime, stop, client_factory=telegram.factory, wait_time_sec=1)
        )
        try:
            async with asyncio.timeout(60):
                while "validating" in (await statuses()).values():
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await serving

    assert await statuses() == orders
    row = await db.fetch_one("provider_order_by_remote_id", {"remote_order_id": private_for_public_service})
    assert row["provider_last_error"] == "the chat is private; this service needs a public one"
    assert {call.request for call in telegram.calls} >= {"ResolveUsernameRequest", "CheckChatInviteRequest"}
    pool_outcomes = {  # published on the way out: one lookup per group
        dict(dimensions)["outcome"]: value
        for (name, dimensions), value in totals(capsys.readouterr().out).items()
        if name == "MtprotoPoolOutcomes"
    }
    assert pool_outcomes == {"ok": 3, "definite": 1}
