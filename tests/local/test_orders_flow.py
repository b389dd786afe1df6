"""The orders flow offline in `tgops dev`: orders placed in its fake panel with `tgops panel order` are
polled, inspected through the simulated Telegram (Telethon's real errors) and end depends_ok or
depends_failed, as `tgops panel orders` shows. Nothing is configured but a port and a quick local rhythm."""

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


def _clean_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("TGOPS_", "AWS_"))}
    return env | extra


def _tgops(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TGOPS), *args], cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=60
    )


@contextmanager
def _running_dev(cwd: Path, log: Path) -> Iterator[None]:
    """`tgops dev` from `cwd`, up and answering /health; stopped with Ctrl-C, which must exit 0."""
    port = free_port()
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [str(TGOPS), "dev"],
            cwd=cwd,
            env=_clean_env(
                TGOPS_API_PORT=str(port), TGOPS_DISPATCH_JITTER_MAX_SEC="0", TGOPS_DEV_SCHEDULE_PERIOD_SEC="2"
            ),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(process, port, log)
        yield
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


def _place_order(cwd: Path, link: str, service_id: int) -> int:
    options = ("--service-id", str(service_id), "--link", link, "--quantity", "50")
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

    assert orders[good]["status"] == "depends_ok", orders[good]
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
    assert {orders[order_id]["status"] for order_id in first} == {"depends_ok"}
    assert (orders[bot]["status"], orders[bot]["chat_type"]) == ("depends_ok", "bot")
