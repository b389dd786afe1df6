"""Lambda entrypoint of the `dispatch_setup` schedule: setup tasks upserted and the due ones queued."""

from tgops.accounts.dispatch import run
from tgops.runtime import scheduled_handler

handler = scheduled_handler(run)
