"""Lambda entrypoint of the `group_message_queue` consumer: broadcasts, their continuations and deletions."""

from tgops.messaging.consumer import lambda_handler

handler = lambda_handler("group_message_queue")
