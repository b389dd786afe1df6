"""The orders flow offline in `tgops dev`: orders placed in its fake panel with `tgops panel order` are
polled, inspected through the simulated Telegram (Telethon's real errors), validated (and started) or
failed, as `tgops panel orders` shows; with `tgops provider simulate` beside it, an order runs to
completed and the fake panel hears every step. Nothing is configured but a port, a provider token and a
quick local rhythm."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tgops.local.services import free_port

TGOPS = Path(sys.executable).parent / "tgops"
FLOW_LIMIT_SEC = 90
PROVIDER_TOKEN = "local-test-provider-token"
STARTED = ("awaiting", "in_progress")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("TGOPS_", "AWS_"))}
    return env | extra


def _tgops(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TGOPS), *args], cwd=cwd, env=_clean_env(**env), capture_output=True, text=True, timeout=60
    )


@contextmanager
def _running_dev(cwd: Path, log: Path, **env: str) -> Iterator[int]:
    """`tgops dev` from `cwd`, up and answering /health (its port given); stopped with Ctrl-C, which
    must exit 0."""
    port = free_port()
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [str(TGOPS), "dev"],
            cwd=cwd,
            env=_clean_env(
                TGOPS_API_PORT=str(port),
                TGOPS_DISPATCH_JITTER_MAX_SEC="0",
                TGOPS_DEV_SCHEDULE_PERIOD_SEC="2",
                **env,
            ),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(process, port, log)
        yield port
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, log.read_text()


def _wait_until_up(process: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"tgops dev did not come up:\n{log.read_text()}")


def _place_order(cwd: Path, link: str, service_id: int, quantity: int = 50) -> int:
    options = ("--service-id", str(service_id), "--link", link, "--quantity", str(quantity))
    result = _tgops(cwd, "panel", "order", *options)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


def _orders_when_decided(cwd: Path, order_ids: set[int], log: Path) -> dict[int, dict]:
    deadline = time.monotonic() + FLOW_LIMIT_SEC
    while time.monotonic() < deadline:
        result = _tgops(cwd, "panel", "orders", "--json")
        assert result.returncode == 0, result.stderr
        orders = {row["remote_order_id"]: row for row in json.loads(result.stdout)}
        if order_ids <= orders.keys() and all(orders[i]["status"] != "validating" for i in order_ids):
            return orders
        time.sleep(1)
    raise AssertionError(f"orders {order_ids} still undecided:\n{log.read_text()[-5000:]}")


def test_orders_placed_in_the_fake_panel_are_validated_through_the_simulated_telegram(tmp_path):
    log = tmp_path / "dev.log"
    with _running_dev(tmp_path, log):
        good = _place_order(tmp_path, "https://t.me/good_channel", service_id=1)
        missing = _place_order(tmp_path, "https://t.me/missing_channel", service_id=2)
        orders = _orders_when_decided(tmp_path, {good, missing}, log)

    assert orders[good]["status"] in STARTED, orders[good]  # validated; service 1 starts by itself
    assert (orders[good]["chat_type"], orders[good]["title"]) == ("channel", "good_channel (simulated)")
    assert orders[missing]["status"] == "depends_failed", orders[missing]
    assert orders[missing]["reason"] == "username_not_occupied"  # Telethon's UsernameNotOccupiedError
    assert "Telegram is simulated" in log.read_text()
    assert not (tmp_path / ".tgops" / "dev.json").exists(), "tgops dev left its state file behind"


def test_the_flow_goes_on_after_a_restart(tmp_path):
    with _running_dev(tmp_path, tmp_path / "first.log"):
        # Lookups at once, more than the simulated accounts: every account is used, so every one is locked.
        first = {_place_order(tmp_path, f"https://t.me/channel_{n}", service_id=1) for n in range(6)}
        _orders_when_decided(tmp_path, first, tmp_path / "first.log")

    # The panel's orders and ids go on, and the accounts' locks were given back (they would otherwise
    # hold for the inspect job timeout, 180 s, beyond this test's wait).
    log = tmp_path / "second.log"
    with _running_dev(tmp_path, log):
        bot = _place_order(tmp_path, "https://t.me/helper_bot", service_id=1)
        orders = _orders_when_decided(tmp_path, {bot}, log)

    assert bot > max(first)
    assert {orders[order_id]["status"] for order_id in first} <= set(STARTED)
    assert (orders[bot]["status"] in STARTED, orders[bot]["chat_type"]) == (True, "bot")


def test_an_order_runs_to_completed_with_the_simulated_provider_and_the_panel_hears_it(tmp_path):
    log = tmp_path / "dev.log"
    env = {
        "TGOPS_PROVIDER_TOKEN": PROVIDER_TOKEN,
        "TGOPS_ORDER_SERVICE_RULES": '{"1": {"interval_seconds": 1}}',
    }
    with _running_dev(tmp_path, log, **env) as port:
        order_id = _place_order(tmp_path, "https://t.me/durov/42", service_id=1, quantity=3)
        provider = subprocess.Popen(
            [str(TGOPS), "provider", "simulate", "--accounts", "5", "--period", "0.5"],
            cwd=tmp_path,
            env=_clean_env(TGOPS_API_PORT=str(port), TGOPS_PROVIDER_TOKEN=PROVIDER_TOKEN),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            timeline = _timeline_when(tmp_path, order_id, log, lambda t: t["panel_updates"]["pending"] == 0
                                      and t["order"]["status"] == "completed")  # fmt: skip
        finally:
            provider.send_signal(signal.SIGINT)
            provider_output = provider.communicate(timeout=30)[0]
        panel_orders = json.loads((tmp_path / ".tgops" / "fake-panel.json").read_text())

    assert provider.returncode == 0, provider_output
    assert (timeline["order"]["remains"], timeline["order"]["post_id"]) == (0, 42)
    events = [event["event"] for event in timeline["events"]]
    assert {"polled", "validated", "started", "task created", "task done", "panel told"} <= set(events)
    assert timeline["tasks"] == {"done": 3}
    [panel_order] = [order for order in panel_orders if order["id"] == order_id]
    assert (panel_order["status"], panel_order["remains"]) == ("completed", 0)
    assert panel_order["start_count"] > 0  # the simulated channel's member count


def _timeline_when(cwd: Path, order_id: int, log: Path, done) -> dict:
    deadline = time.monotonic() + FLOW_LIMIT_SEC
    timeline = None
    while time.monotonic() < deadline:
        result = _tgops(cwd, "orders", "show", str(order_id), "--json")
        if result.returncode == 0:
            timeline = json.loads(result.stdout)
            if done(timeline):
                return timeline
        time.sleep(1)
    raise AssertionError(f"order {order_id} not done: {timeline}\n{log.read_text()[-5000:]}")
