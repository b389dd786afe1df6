"""The messaging layer's own errors: callers never see botocore exceptions."""

from __future__ import annotations

MAX_VISIBILITY_TIMEOUT_SEC = 12 * 3600  # SQS refuses a longer visibility timeout


class MessagingError(Exception):
    """Base of every error raised by tgops.messaging."""


class InvalidMessage(MessagingError, ValueError):
    """A message body that cannot become the expected model; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryLater(MessagingError):
    """Raised by a handler: keep the message and hand it back after `delay_sec` (never deleted).

    Each retry is one more receive, so it counts toward the queue's maxReceiveCount.
    """

    def __init__(self, delay_sec: int, reason: str) -> None:
        self.delay_sec = min(max(int(delay_sec), 0), MAX_VISIBILITY_TIMEOUT_SEC)
        self.reason = reason
        super().__init__(f"retry in {self.delay_sec}s: {reason}")


class QueueUnavailable(MessagingError):
    """SQS could not be reached or refused the call (endpoint down, missing queue, throttled)."""
