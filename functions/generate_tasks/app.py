"""Lambda entrypoint of the `generate_tasks` schedule: one task generation run per EventBridge tick."""

from tgops.provider.generation import run
from tgops.runtime import scheduled_handler

handler = scheduled_handler(run)
