"""Lambda entrypoint of the `flush_panel_updates` schedule: send the panel what it has not heard yet."""

from tgops.orders.panel_updates import run
from tgops.runtime import scheduled_handler

handler = scheduled_handler(run)
