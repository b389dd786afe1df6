"""What the inspector reports about an order link, and the seam the validation worker depends on.

Kept free of Telegram libraries so the Lambda path and the validation rules can import it.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel

from tgops.telegram.peers import ChatType


class InspectionResult(BaseModel):
    ok: bool  # a definite answer (the link exists or definitely does not); False means "ask again later"
    exists: bool = False
    link_kind: str
    chat_type: ChatType | None = None
    title: str | None = None
    username: str | None = None
    participants_count: int | None = None
    is_private: bool | None = None
    join_request: bool | None = None
    paid: bool | None = None
    is_bot: bool | None = None
    error_code: str | None = None
    retryable: bool = False
    reason: str | None = None

    @classmethod
    def missing(cls, link_kind: str, error_code: str, reason: str) -> InspectionResult:
        """A definite 'this does not exist / cannot be used' answer."""
        return cls(ok=True, exists=False, link_kind=link_kind, error_code=error_code, reason=reason)

    @classmethod
    def temporary(cls, link_kind: str, error_code: str, reason: str) -> InspectionResult:
        """No answer yet: the caller should retry later (with backoff)."""
        return cls(
            ok=False, exists=False, link_kind=link_kind, error_code=error_code, retryable=True, reason=reason
        )


class LinkInspector(Protocol):
    async def inspect(self, link: str) -> InspectionResult: ...
