"""Lambda entrypoint of the `group_tick` schedule: queue due group maintenance, send periodic posts."""

from tgops.groups.tick import run
from tgops.runtime import scheduled_handler

handler = scheduled_handler(run)
