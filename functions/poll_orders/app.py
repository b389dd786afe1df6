"""Lambda entrypoint of the `poll_orders` schedule: one panel poll per EventBridge tick."""

from tgops.orders.polling import run
from tgops.runtime import scheduled_handler

handler = scheduled_handler(run)
