"""The tg-inspect queue's message: validate one order group (service, normalized link)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tgops.messaging.envelopes import Message


class ValidateOrderGroup(Message):
    kind: Literal["validate_order_group"] = "validate_order_group"
    remote_service_id: int
    link: str = Field(min_length=1, max_length=4096)
    # Tries spent by earlier messages of the same job: SQS redrives after 3 receives, the job has 5.
    tries_before: int = Field(0, ge=0)


class RecheckOrderLink(Message):
    """Inspect a running order's link again: its tasks keep failing for a definite link error."""

    kind: Literal["recheck_order_link"] = "recheck_order_link"
    order_id: int = Field(gt=0)
    remote_service_id: int
    link: str = Field(min_length=1, max_length=4096)
