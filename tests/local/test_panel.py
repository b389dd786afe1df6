"""The fake SMM panel `tgops dev` runs, and `tgops panel` without a running `tgops dev`."""

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tgops.local.fake_panel import FakePanel

TGOPS = Path(sys.executable).parent / "tgops"


def test_orders_are_placed_over_http_with_the_key_only():
    with FakePanel(api_key="right-key") as panel:
        placed = httpx.post(
            f"{panel.url}/orders",
            json={"service_id": 3, "link": "https://t.me/durov", "quantity": 10},
            headers={"Authorization": "Bearer right-key"},
        )
        wrong_key = httpx.post(
            f"{panel.url}/orders", json={"link": "https://t.me/x"}, headers={"Authorization": "Bearer wrong"}
        )
        no_link = httpx.post(
            f"{panel.url}/orders", json={"service_id": 3}, headers={"Authorization": "Bearer right-key"}
        )
        listed = panel.listing("validating", "3", 10)

    assert placed.status_code == 201
    assert listed == [
        {"id": placed.json()["id"], "service_id": 3, "link": "https://t.me/durov", "quantity": 10,
         "remains": 10, "start_count": 0, "status": "validating"},
    ]  # fmt: skip
    assert wrong_key.status_code == 401
    assert no_link.status_code == 400 and "link" in no_link.json()["error"]


def test_orders_and_their_ids_survive_a_restart(tmp_path):
    state = tmp_path / "fake-panel.json"
    with FakePanel(state_file=state) as panel:
        first = panel.place_order("https://t.me/first")
    with FakePanel(state_file=state) as panel:
        second = panel.place_order("https://t.me/second")
        links = [order["link"] for order in panel.listing("validating", None, 10)]

    assert second == first + 1  # a new id: ours keys orders by the panel's id
    assert links == ["https://t.me/first", "https://t.me/second"]


def _tgops_here(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("TGOPS_")}
    return subprocess.run(
        [str(TGOPS), "panel", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


def test_panel_commands_without_tgops_dev_say_what_is_missing_in_one_line(tmp_path):
    order = _tgops_here(tmp_path, "order", "--link", "https://t.me/durov")
    orders = _tgops_here(tmp_path, "orders")

    assert order.returncode == 2 and order.stderr.strip().splitlines() == [
        "error: no fake panel here: run `tgops dev` from this folder with TGOPS_PANEL_BASE_URL unset"
    ]
    assert orders.returncode == 2 and len(orders.stderr.strip().splitlines()) == 1
    assert "TGOPS_DATABASE_URL" in orders.stderr and "Traceback" not in orders.stderr
