"""A LinkInspector with canned answers per link, recording every call (the MTProto boundary faked)."""

from __future__ import annotations

from collections import defaultdict

from tgops.orders.inspection_result import InspectionResult

Answer = InspectionResult | Exception


def public_channel(**overrides) -> InspectionResult:
    fields = {
        "ok": True, "exists": True, "link_kind": "public", "chat_type": "channel", "title": "A channel",
        "username": "somechannel", "participants_count": 1200, "is_private": False, "join_request": False,
        "paid": False, "is_bot": False,
    }  # fmt: skip
    return InspectionResult(**(fields | overrides))


def missing(link_kind: str = "public") -> InspectionResult:
    return InspectionResult.missing(link_kind, "USERNAME_NOT_OCCUPIED", "no chat has this username")


def temporary(link_kind: str = "public") -> InspectionResult:
    return InspectionResult.temporary(link_kind, "NO_AVAILABLE_ACCOUNTS", "all_attempts_exhausted")


class FakeInspector:
    """`answer(link, a, b)` makes the first inspect of `link` answer a, then b, then b again; an
    Exception answer is raised. A link with no answer gets `default`."""

    def __init__(self, default: Answer | None = None) -> None:
        self.default = default or public_channel()
        self.calls: list[str] = []
        self._answers: dict[str, list[Answer]] = defaultdict(list)

    def answer(self, link: str, *answers: Answer) -> None:
        self._answers[link] = list(answers)

    async def inspect(self, link: str) -> InspectionResult:
        self.calls.append(link)
        queue = self._answers.get(link) or [self.default]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer
