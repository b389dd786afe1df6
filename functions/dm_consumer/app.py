"""Lambda entrypoint of the dm_queue consumer: the DM bot, for the main bot and every cloned bot."""

from tgops.messaging.consumer import lambda_handler

handler = lambda_handler("dm_queue")
