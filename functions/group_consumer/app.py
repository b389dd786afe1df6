"""Lambda entrypoint of the `tgms_queue` consumer: join requests, member updates, group maintenance."""

from tgops.messaging.consumer import lambda_handler

handler = lambda_handler("tgms_queue")
