"""The admin dashboard in a real browser (Debian's Chromium through Playwright) against a served app.

The app runs in uvicorn on a free port over this test's Postgres and Redis, with SQS from moto; the data
the pages show is seeded the way the system writes it. Screenshots go to .test-artifacts/dashboard/.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import psycopg
import pytest
import uvicorn
from moto import mock_aws

from tgops.api.app import create_app
from tgops.local.services import free_port
from tgops.messaging.sqs import SqsQueues
from tgops.messaging.topology import DM
from tgops.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / ".test-artifacts" / "dashboard"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip

SEED = """
INSERT INTO provider_orders (remote_order_id, remote_service_id, raw_link, link, quantity, remains, status,
                             provider_last_error, validation_result, created_at, validated_at, started_at,
                             start_count, action)
VALUES (7001, 3, 't.me/durov', 't.me/durov', 100, 40, 'in_progress', NULL,
        '{"chat_type": "channel", "title": "Durov", "participants_count": 1200}', now() - interval '20 minutes',
        now() - interval '19 minutes', now() - interval '18 minutes', 1200, 'subscribe'),
       (7002, 3, 't.me/missing_x', 't.me/missing_x', 50, 50, 'depends_failed', 'username_not_occupied', NULL, now(),
        now(), NULL, NULL, NULL),
       (7003, 3, 't.me/slowpoke', 't.me/slowpoke', 10, 10, 'validating', NULL, NULL, now() - interval '2 hours',
        NULL, NULL, NULL, NULL),
       (7004, 3, 't.me/idle_chan', 't.me/idle_chan', 30, 30, 'in_progress', NULL, '{"chat_type": "channel"}',
        now() - interval '5 hours', now() - interval '5 hours', now() - interval '3 hours', 10, 'subscribe'),
       (7005, 3, 't.me/busy_chan', 't.me/busy_chan', 20, 17, 'in_progress', NULL, '{"chat_type": "channel"}',
        now() - interval '1 hour', now() - interval '1 hour', now() - interval '50 minutes', 5, 'subscribe');
INSERT INTO order_panel_updates (order_id, remote_order_id, change, fields, sent_at)
SELECT id, 7001, 'started', '{"status": "In progress", "start_count": 1200}', now() - interval '17 minutes'
FROM provider_orders WHERE remote_order_id = 7001;
INSERT INTO mtproto_accounts (phone, session_encrypted, is_probe, cooldown_until, disabled_at, disabled_reason,
                              is_active, proxy_type, proxy_host, proxy_port)
VALUES ('+15550001111', 'x', true, NULL, NULL, NULL, true, 'socks5', 'proxy.example', 1080),
       ('+15550002222', 'x', false, now() + interval '10 minutes 30 seconds', NULL, NULL, true, NULL, NULL, NULL),
       ('+15550003333', 'x', false, NULL, now(), 'AUTH_KEY_UNREGISTERED', false, NULL, NULL, NULL);
INSERT INTO mtproto_account_tasks (account_id, task_type, status)
SELECT id, 'ensure_2fa', 'done' FROM mtproto_accounts WHERE NOT is_probe;
INSERT INTO telegram_accounts (provider_account_id, phone) VALUES ('ext_1', '+1999');
INSERT INTO telegram_tasks (id, order_id, action, link_hash, telegram_account_id, provider_account_id, status)
SELECT '01ARZ3NDEKTSV4RRFFQ69G5FA' || n, (SELECT id FROM provider_orders WHERE remote_order_id = 7001),
       'subscribe', 'h', (SELECT id FROM telegram_accounts), 'ext_1', CASE WHEN n < 3 THEN 'done' ELSE 'queued' END
FROM generate_series(0, 4) AS n;
UPDATE telegram_tasks SET created_at = now() - interval '16 minutes', finished_at = now() - interval '15 minutes'
WHERE status = 'done';
INSERT INTO telegram_accounts (provider_account_id, phone) VALUES ('ext_2', '+1998');
INSERT INTO telegram_tasks (id, order_id, action, link_hash, telegram_account_id, provider_account_id, status,
                            available_at, leased_until, lease_version, attempt, result)
SELECT id, (SELECT id FROM provider_orders WHERE remote_order_id = 7005), 'subscribe', 'h',
       (SELECT id FROM telegram_accounts WHERE provider_account_id = 'ext_2'), 'ext_2', status,
       now() + lease::interval, now() + lease::interval, 1, 1, result::jsonb
FROM (VALUES ('01ARZ3NDEKTSV4RRFFQ69G5FB0', 'leased', '5 minutes', NULL),
             ('01ARZ3NDEKTSV4RRFFQ69G5FB1', 'leased', '-2 minutes', NULL),
             ('01ARZ3NDEKTSV4RRFFQ69G5FB2', 'failed', '0 seconds', '{"error": "USER_BANNED_IN_CHANNEL"}'))
     AS tasks (id, status, lease, result);
INSERT INTO bot_users (user_id, first_name, points, referral_count, commands) VALUES (42, 'Ann', 19, 1, 5), (43, 'Bob', 9, 0, 2);
INSERT INTO managed_groups (chat_id, title, member_count, is_active, consecutive_failures, last_failure_reason)
VALUES (-1001, 'Growing group', 130, true, 0, NULL), (-1002, 'Kicked us', 50, false, 3, 'Forbidden: bot was kicked');
INSERT INTO group_member_counts (chat_id, member_count, counted_at)
SELECT -1001, count, date_trunc('hour', now()) + at::interval
FROM (VALUES (100, '-170 minutes'), (120, '-110 minutes'), (125, '-50 minutes'), (130, '-20 minutes'))
     AS counts (count, at);  -- three hours, the last with two counts
INSERT INTO broadcast_jobs (job_id, job, bot_key, status, total) VALUES ('01JOBJOBJOBJOBJOBJOBJOBJOB', '{}', 'k', 'sending', 2);
INSERT INTO broadcast_deliveries (job_id, chat_id, target_chat_id, status, debug_code)
VALUES ('01JOBJOBJOBJOBJOBJOBJOBJOB', -1001, -1001, 'sent', 'DBG:AAAAAA'),
       ('01JOBJOBJOBJOBJOBJOBJOBJOB', -1002, -1002, 'failed', 'DBG:AAAAAB');
UPDATE broadcast_deliveries SET error = 'Forbidden: bot was kicked', finished_at = now() WHERE status = 'failed';
INSERT INTO bot_outbox (bot_key, method, chat_id, params) VALUES ('k', 'sendMessage', 42, '{"chat_id": 42, "text": "hello dry run"}');
INSERT INTO bots (username, webhook_secret_hash, owner_user_id, is_main, is_active, deactivated_reason)
VALUES ('main_bot', 'h0', NULL, true, true, NULL), ('clone_of_ann_bot', 'h1', 42, false, true, NULL),
       ('revoked_clone_bot', 'h2', 43, false, false, 'token revoked');
INSERT INTO dm_updates (bot_id, update_id, user_id, command, created_at)
VALUES (0, 1, 42, '/start', now() - interval '1 day'), (0, 2, 42, '/balance', now()), (0, 3, 43, '/start', now());
INSERT INTO bot_points_ledger (user_id, delta, reason, bot_id, update_id)
VALUES (42, 10, 'initial', 0, 1), (42, 10, 'referral', 0, 2), (42, -1, 'live_check', 0, 3);
"""


@pytest.fixture
def served(settings) -> Iterator[dict]:
    with mock_aws():
        queues = SqsQueues(settings)
        queues.ensure_queues()
        with psycopg.connect(settings.database_url, autocommit=True) as connection:
            connection.execute(SEED)
        body = json.dumps({"kind": "telegram_update", "update_id": 99, "note": "poison pill"})
        dead_id = queues.client.send_message(
            QueueUrl=queues.url(DM.dlq_name),
            MessageBody=body,
            MessageGroupId="0:42",
            MessageDeduplicationId="d1",
        )["MessageId"]
        with psycopg.connect(
            settings.database_url, autocommit=True
        ) as connection:  # as the consumer records it
            connection.execute(
                "INSERT INTO queue_message_failures (queue, message_id, receive_count, reason, failed_at)"
                " VALUES (%s, %s, 3, %s, now() - interval '90 minutes')",
                (DM.name, dead_id, "KeyError: 'bot_id'"),
            )
        boto3.client("cloudwatch", region_name=settings.aws_region).put_metric_data(  # as SQS publishes it
            Namespace="AWS/SQS",
            MetricData=[{"MetricName": "ApproximateAgeOfOldestMessage", "Value": 420, "Unit": "Seconds",
                         "Dimensions": [{"Name": "QueueName", "Value": queues.physical_name(DM.name)}]}],
        )  # fmt: skip
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(Runtime(settings)), host="127.0.0.1", port=port,
                                               log_level="warning"))  # fmt: skip
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "the app did not start"
            time.sleep(0.05)
        try:
            yield {
                "url": f"http://127.0.0.1:{port}",
                "queues": queues,
                "dead_id": dead_id,
                "settings": settings,
            }
        finally:
            server.should_exit = True
            thread.join(10)


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        yield page
        browser.close()


def log_in(page, served) -> None:
    page.goto(served["url"] + "/dashboard/")
    assert page.url.endswith("/dashboard/login")
    page.fill("input[name=token]", served["settings"].admin_token.get_secret_value())
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")


def test_the_dashboard_needs_the_admin_token(served, browser_page):
    page = browser_page
    page.goto(served["url"] + "/dashboard/orders")
    assert page.url.endswith("/dashboard/login")
    page.fill("input[name=token]", "not-the-token")
    page.click("button[type=submit]")
    assert "That is not the admin token." in page.content()
    page.screenshot(path=SCREENSHOTS / "login-refused.png")

    log_in(page, served)
    cookie = next(cookie for cookie in page.context.cookies() if cookie["name"] == "tgops_dashboard")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    page.click("text=Log out")
    page.wait_for_url("**/dashboard/login")
    page.goto(served["url"] + "/dashboard/")
    assert page.url.endswith("/dashboard/login")


def test_every_page_renders_the_systems_real_data(served, browser_page):
    page = browser_page
    log_in(page, served)
    assert "dm_queue" in page.inner_text("#queues")
    dm_row = page.locator("#queues tr", has_text="dm_queue").locator("td")
    assert dm_row.nth(5).inner_text() == "7 min"  # the oldest message's age, from CloudWatch
    assert dm_row.nth(6).inner_text() == "1" and dm_row.nth(8).inner_text() == "1 h 30 min"
    alarms = page.inner_text("#alarms")
    assert "the oldest message of dm_queue has waited 420 s" in alarms
    assert "no action account is usable (all 2 cooling down or disabled)" in alarms  # only the probe is
    assert "1 group(s) deactivated in the last hour" in alarms
    assert (
        page.locator("#activity .card", has_text="orders polled").locator("b").inner_text() == "2"
    )  # 7001 and 7002
    page.screenshot(path=SCREENSHOTS / "overview.png", full_page=True)

    page.click("text=Orders")
    assert "7001" in page.inner_text("#orders") and "username_not_occupied" in page.inner_text("#orders")
    stuck = page.locator("#stuck tr", has_text="7003").inner_text()
    assert "validating too long" in stuck and "2 h 0 min" in stuck
    idle = page.locator("#stuck tr", has_text="7004").inner_text()
    assert "executing without progress" in idle and "3 h 0 min" in idle
    assert "7001" not in page.inner_text("#stuck")  # its tasks finished a quarter of an hour ago
    page.screenshot(path=SCREENSHOTS / "orders.png", full_page=True)

    page.click("#orders >> text=7001")
    page.wait_for_url("**/dashboard/orders/7001")
    events = [row.inner_text() for row in page.locator("#timeline tr").all()[1:]]
    assert [event.split("\t")[1] for event in events] == [
        "polled", "validated", "started", "panel told", "task created", "task created", "task created",
        "task done", "task done", "task done", "task created", "task created",
    ]  # fmt: skip
    assert "participants_count" in events[1] and "start count: 1200" in events[2]
    assert "done 3" in page.inner_text("#order-summary") and "1 sent" in page.inner_text("#order-summary")
    page.screenshot(path=SCREENSHOTS / "order-timeline.png", full_page=True)
    page.goto(served["url"] + "/dashboard/orders/999999")
    assert "No order 999999 here" in page.inner_text("#no-order")
    page.goto(served["url"] + "/dashboard/orders")

    page.click("text=Accounts")
    accounts = page.inner_text("#accounts")
    assert (
        "cooling down" in accounts and "AUTH_KEY_UNREGISTERED" in accounts and "+15550001111" not in accounts
    )
    assert "socks5://proxy.example:1080" in page.inner_text("#proxies")
    setup = page.locator("#setup tr", has_text="ensure_2fa").inner_text()
    assert "1 of 1 accounts" in setup  # the action accounts setup works on: the cooling one, not the disabled
    assert "0 of 1 accounts" in page.locator("#setup tr", has_text="story_video").inner_text()
    assert "10 min" in page.locator("#accounts tr", has_text="cooling down").inner_text()
    page.screenshot(path=SCREENSHOTS / "accounts.png", full_page=True)

    page.click("text=Provider tasks")
    per_account = page.locator("#per-account tr", has_text="ext_2").locator("td")
    assert [per_account.nth(n).inner_text() for n in range(1, 6)] == ["0", "1", "1", "0", "1"]
    assert page.locator("#per-account tr", has_text="ext_1").locator("td").nth(4).inner_text() == "3"
    assert page.locator("#task-counts .card", has_text="done").locator("b").inner_text() == "3"
    assert "USER_BANNED_IN_CHANNEL" in page.inner_text("#recent-tasks")
    page.screenshot(path=SCREENSHOTS / "tasks.png", full_page=True)
    page.click("#task-counts >> text=expired leases")
    page.wait_for_url("**status=expired_leases")
    recent = page.locator("#recent-tasks tr").all()[1:]
    assert len(recent) == 1 and "expired 2 min" in recent[0].inner_text() and "7005" in recent[0].inner_text()

    page.click("text=Groups")
    assert "Forbidden: bot was kicked" in page.inner_text("#groups") and "deactivated" in page.inner_text(
        "#groups"
    )
    assert page.locator("svg.member-chart").get_attribute("data-points") == "3"  # one point an hour
    broadcast = page.locator("#broadcasts tr", has_text="01JOBJOBJOBJOBJOBJOBJOBJOB").locator("td")
    assert broadcast.nth(2).locator(".progress-text").inner_text() == "2/2 (100%)"
    assert broadcast.nth(6).inner_text() == "1"  # the failed chat's group is deactivated
    assert "130" in page.locator("#groups tr", has_text="Growing group").inner_text()
    assert page.locator(".member-range").first.inner_text().startswith("100 → 130 (low 100, high 130")
    page.screenshot(path=SCREENSHOTS / "groups.png", full_page=True)

    page.click("text=Outbox")
    assert "hello dry run" in page.inner_text("#outbox")
    page.screenshot(path=SCREENSHOTS / "outbox.png", full_page=True)

    page.click("text=Bot usage")
    assert page.locator("#bot-totals .card", has_text="users").locator("b").inner_text() == "2"
    assert page.locator("#chart-granted rect").count() == 1
    assert page.locator("#chart-commands rect").count() == 2  # yesterday and today
    start = page.locator("#top-commands tr", has_text="/start").locator("td")
    assert [start.nth(1).inner_text(), start.nth(2).inner_text()] == ["2", "2"]
    bots = page.inner_text("#cloned-bots")
    assert "@clone_of_ann_bot" in bots and "off: token revoked" in bots and "@main_bot" not in bots
    page.screenshot(path=SCREENSHOTS / "bot.png", full_page=True)


def test_a_dead_letter_is_replayed_by_clicking(served, browser_page):
    page = browser_page
    log_in(page, served)
    page.goto(served["url"] + "/dashboard/dlq/dm_queue")
    rows = page.inner_text("#dead-letters")
    assert "KeyError: 'bot_id'" in rows and "poison pill" in rows
    page.check(f"input[value='{served['dead_id']}']")
    page.screenshot(path=SCREENSHOTS / "dlq-selected.png", full_page=True)
    page.click("#replay-selected")
    page.wait_for_selector("#flash")

    assert "Replayed 1 message(s)" in page.inner_text("#flash")
    assert served["dead_id"] in page.inner_text("#history")
    assert "no dead letter" in page.inner_text("#dead-letters")
    page.screenshot(path=SCREENSHOTS / "dlq-replayed.png", full_page=True)
    queues: SqsQueues = served["queues"]
    back = queues.client.receive_message(QueueUrl=queues.url(DM.name), WaitTimeSeconds=1)["Messages"]
    assert "poison pill" in back[0]["Body"]


def test_a_switch_is_flipped_and_the_provider_pull_obeys_it(served, browser_page):
    page = browser_page
    log_in(page, served)
    page.click("text=Switches")
    page.click("#flip-pause_provider_leasing")
    page.wait_for_selector("#state-pause_provider_leasing:text('on')")
    page.screenshot(path=SCREENSHOTS / "switches.png", full_page=True)

    token = served["settings"].provider_token.get_secret_value()
    pull = httpx.post(served["url"] + "/api/provider/telegram/tasks/pull", json={"limit": 10},
                      headers={"X-Provider-Token": token}, timeout=10)  # fmt: skip
    assert pull.status_code == 200 and pull.json()["count"] == 0

    page.click("#flip-pause_provider_leasing")
    page.wait_for_selector("#state-pause_provider_leasing:text('off')")
    pull = httpx.post(served["url"] + "/api/provider/telegram/tasks/pull", json={"limit": 10},
                      headers={"X-Provider-Token": token}, timeout=10)  # fmt: skip
    assert pull.json()["count"] == 3  # the two queued tasks and the one whose lease ran out


def test_state_changes_need_the_sessions_csrf_token(served):
    from tgops.api.dashboard.router import router

    posts = {route.path for route in router.routes if "POST" in route.methods} - {"/login"}
    assert posts == {"/logout", "/dlq/{queue}/replay", "/switches/{name}"}  # a new action joins this test
    paths = [path.format(queue="dm_queue", name="pause_broadcasts") for path in sorted(posts)]
    with httpx.Client(base_url=served["url"] + "/dashboard", follow_redirects=False) as client:
        token = served["settings"].admin_token.get_secret_value()
        assert client.post("/login", data={"token": token}).status_code == 303
        refused = {path: client.post(path, data={"on": "1", "scope": "matching"}) for path in paths}
        wrong = client.post("/switches/pause_broadcasts", data={"on": "1", "csrf": "forged"})
        page = client.get("/switches").text
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        accepted = client.post("/switches/pause_broadcasts", data={"on": "1", "csrf": csrf})
        by_header = client.post(
            "/switches/pause_broadcasts", data={"on": "0"}, headers={"X-CSRF-Token": csrf}
        )

    assert {path: answer.status_code for path, answer in refused.items()} == dict.fromkeys(paths, 403)
    assert 'id="state-pause_broadcasts">off' in page  # nothing refused took effect
    assert wrong.status_code == 403 and accepted.status_code == 303 and by_header.status_code == 303


def test_dead_letters_are_replayed_one_by_one_or_all_matching_a_filter(served, browser_page):
    queues: SqsQueues = served["queues"]
    body = json.dumps({"kind": "telegram_update", "update_id": 100, "note": "second pill"})
    other_id = queues.client.send_message(QueueUrl=queues.url(DM.dlq_name), MessageBody=body,
                                          MessageGroupId="0:43", MessageDeduplicationId="d2")["MessageId"]  # fmt: skip
    with psycopg.connect(served["settings"].database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO queue_message_failures (queue, message_id, receive_count, reason) VALUES (%s, %s, 3, %s)",
            (DM.name, other_id, "ValidationError: chat_id"),
        )
    page = browser_page
    log_in(page, served)
    page.goto(served["url"] + "/dashboard/dlq/dm_queue")
    page.fill("input[name=reason]", "validationerror")
    page.click("text=Filter")
    page.wait_for_url("**reason=validationerror**")
    rows = page.inner_text("#dead-letters")
    assert "second pill" in rows and "poison pill" not in rows
    page.screenshot(path=SCREENSHOTS / "dlq-filtered.png", full_page=True)
    page.click("#replay-matching")
    page.wait_for_selector("#flash")
    assert "Replayed 1 message(s)" in page.inner_text("#flash")
    assert other_id in page.inner_text("#history") and served["dead_id"] not in page.inner_text("#history")

    page.goto(served["url"] + "/dashboard/dlq/dm_queue")
    assert "second pill" not in page.inner_text("#dead-letters")
    page.locator("#dead-letters tr", has_text="poison pill").locator("button.replay-one").click()
    page.wait_for_selector("#flash")
    assert served["dead_id"] in page.inner_text("#history") and "no dead letter" in page.inner_text(
        "#dead-letters"
    )
    bodies = [message["Body"] for message in
              queues.client.receive_message(QueueUrl=queues.url(DM.name), MaxNumberOfMessages=10,
                                            WaitTimeSeconds=1)["Messages"]]  # fmt: skip
    assert any("second pill" in body for body in bodies)


def test_pages_refresh_themselves(served, browser_page):
    page = browser_page
    log_in(page, served)
    page.goto(served["url"] + "/dashboard/accounts")
    assert "AUTH_KEY_DUPLICATED" not in page.inner_text("#accounts")
    with psycopg.connect(served["settings"].database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO mtproto_accounts (phone, session_encrypted, is_active, disabled_at, disabled_reason)"
            " VALUES ('+15550004444', 'x', false, now(), 'AUTH_KEY_DUPLICATED')"
        )
    page.wait_for_selector("#accounts >> text=AUTH_KEY_DUPLICATED")  # no reload: the page fetched it
    assert page.locator("#proxies tr", has_text="no proxy").locator("td").nth(3).inner_text() == "2"


def test_an_order_id_out_of_range_is_refused_with_a_reason(served):
    with httpx.Client(base_url=served["url"] + "/dashboard", follow_redirects=False) as client:
        client.post("/login", data={"token": served["settings"].admin_token.get_secret_value()})
        too_big = client.get(f"/orders/{2**63}")
        not_a_number = client.get("/orders/abc")
        absent = client.get("/orders/424242")

    assert too_big.status_code == 422 and not_a_number.status_code == 422
    assert absent.status_code == 404 and "No order 424242 here" in absent.text
