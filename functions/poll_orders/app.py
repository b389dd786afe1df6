"""Lambda entrypoint of the `poll_orders` schedule: one panel poll per EventBridge tick."""

import asyncio

from tgops.config import get_settings
from tgops.orders.polling import run
from tgops.runtime import Runtime

# One loop and one Runtime per container: warm invocations reuse the Postgres pool and Redis client.
loop = asyncio.new_event_loop()
runtime = Runtime(get_settings())


def handler(event, context):
    loop.run_until_complete(run(runtime))
