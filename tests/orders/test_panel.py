from __future__ import annotations

import pytest

from tgops.orders.panel import HttpPanel, PanelError, parse_orders


async def test_fetches_the_orders_of_one_status(panel, http_panel):
    first = panel.place_order("https://t.me/durov", service_id=7, quantity=50)
    panel.place_order("t.me/other", status="in_progress")

    page = await http_panel.fetch_orders("validating")

    assert [(order.id, order.service_id, order.link, order.remains) for order in page.orders] == [
        (first, 7, "https://t.me/durov", 50)
    ]
    assert page.malformed == []
    assert panel.requests[-1]["query"]["status"] == "validating"


async def test_asks_per_service_when_given_one(panel, http_panel):
    panel.place_order("t.me/a", service_id=1)
    panel.place_order("t.me/b", service_id=2)

    page = await http_panel.fetch_orders("validating", service_id=2)

    assert [order.link for order in page.orders] == ["t.me/b"]
    assert panel.requests[-1]["query"]["service_id"] == "2"


async def test_a_malformed_order_is_reported_with_its_id_and_hides_no_other(panel, http_panel):
    good = panel.place_order("t.me/good")
    panel.add_raw_order({"id": 77, "service_id": 1, "quantity": 5, "remains": 5, "status": "validating"})
    panel.add_raw_order(
        {"id": "abc", "service_id": 1, "link": "t.me/x", "quantity": 1, "remains": 1, "status": "validating"}
    )
    panel.add_raw_order("not an object")

    page = await http_panel.fetch_orders("validating")

    assert [order.id for order in page.orders] == [good]
    assert [bad.order_id for bad in page.malformed] == ["77", "abc", None]
    assert "link" in page.malformed[0].reason


def test_panel_spellings_of_a_status_are_accepted():
    page = parse_orders({"orders": [{"id": 1, "service_id": 2, "link": "t.me/a", "quantity": "10",
                                     "remains": "3", "status": "In progress"}]})  # fmt: skip
    assert page.orders[0].status == "in_progress"
    assert page.orders[0].quantity == 10


def test_numbers_beyond_the_table_columns_are_malformed_not_stored():
    page = parse_orders({"orders": [{"id": 1, "service_id": 2, "link": "t.me/a", "quantity": 2**40,
                                     "remains": 1, "status": "validating"}]})  # fmt: skip
    assert page.orders == [] and page.malformed[0].order_id == "1"


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (500, '{"error": "boom"}', "HTTP 500"),
        (200, "<html>maintenance</html>", "not JSON"),
        (200, '{"orders": "none"}', '"orders" list'),
        (200, "[1, 2]", '"orders" list'),
    ],
)
async def test_a_broken_answer_raises_panel_error(panel, http_panel, status, body, message):
    panel.script(status, body)
    with pytest.raises(PanelError, match=message):
        await http_panel.fetch_orders("validating")


async def test_a_wrong_api_key_is_a_panel_error(panel):
    client = HttpPanel(panel.url, "wrong-key")
    try:
        with pytest.raises(PanelError, match="HTTP 401"):
            await client.fetch_orders("validating")
    finally:
        await client.aclose()


async def test_an_unreachable_panel_is_a_panel_error():
    client = HttpPanel("http://127.0.0.1:9", "key", timeout_sec=1)
    try:
        with pytest.raises(PanelError, match="unreachable"):
            await client.fetch_orders("validating")
    finally:
        await client.aclose()


async def test_polling_reads_every_page_of_the_panels_answer(panel, order_settings):
    from tgops.orders.panel import HttpPanel

    ids = [panel.place_order(f"t.me/channel_{n}") for n in range(5)]
    client = HttpPanel.from_settings(order_settings.model_copy(update={"panel_page_limit": 2}))
    try:
        page = await client.fetch_orders("validating")
    finally:
        await client.aclose()

    assert [order.id for order in page.orders] == ids
    offsets = [request["query"]["offset"] for request in panel.requests if request["method"] == "GET"]
    assert offsets == ["0", "2", "4"]
