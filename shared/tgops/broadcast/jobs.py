"""The broadcast job on `group_message_queue`: what to send, with which buttons, to which chats.

The public API builds it from `POST /api/send_messages`; the broadcaster decodes it with
`decode(body, BroadcastJob)`. The field types carry Telegram's limits, so a job that validates here
is one the Bot API can take (text 4096 characters, caption 1024, callback data 64 bytes, at most
8 buttons in a row).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from tgops.messaging.envelopes import Message
from tgops.validation import json_integer

QUEUE = "group_message_queue"

# Patterns use explicit character classes, never \s: Python's `re`, Rust's regex (pydantic) and the
# JSON Schema validators of API clients disagree on what \s covers.
PLAIN_TEXT = r"^[^\x00]*$"  # no NUL: Postgres text and Telegram refuse it
# ... and one visible character at least: Telegram refuses a message of blanks only.
VISIBLE_TEXT = r"^[\x01-\x20\x7f]*[^\x00-\x20\x7f][^\x00]*$"
HTTP_URL = r"^https?://[^\x00-\x20\x7f]+$"
BUTTON_URL = r"^(https?|tg)://[^\x00-\x20\x7f]+$"
CALLBACK_DATA = r"^[A-Za-z0-9_:.\-]{1,64}$"  # ASCII, so 64 characters are 64 bytes
MAX_CHAT_ID = 2**53  # Telegram's ids fit in 52 bits plus sign

ParseMode = Literal["HTML", "MarkdownV2"]


ChatId = Annotated[
    Annotated[int, Field(ge=-MAX_CHAT_ID, le=-1)] | Annotated[int, Field(ge=1, le=MAX_CHAT_ID)],
    BeforeValidator(json_integer),
    Field(description="a Telegram chat id (groups and channels are negative)"),
]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextContent(StrictModel):
    type: Literal["text"]
    text: Annotated[str, Field(min_length=1, max_length=4096, pattern=VISIBLE_TEXT)]
    parse_mode: ParseMode | None = None


class PhotoContent(StrictModel):
    type: Literal["photo"]
    photo_url: Annotated[
        str, Field(max_length=2048, pattern=HTTP_URL, description="http(s) URL of the photo")
    ]
    caption: Annotated[str, Field(max_length=1024, pattern=PLAIN_TEXT)] | None = None
    parse_mode: ParseMode | None = None


Content = Annotated[TextContent | PhotoContent, Field(discriminator="type")]


class UrlButton(StrictModel):
    text: Annotated[str, Field(min_length=1, max_length=64, pattern=VISIBLE_TEXT)]
    url: Annotated[str, Field(max_length=512, pattern=BUTTON_URL)]


class CallbackButton(StrictModel):
    text: Annotated[str, Field(min_length=1, max_length=64, pattern=VISIBLE_TEXT)]
    callback_data: Annotated[str, Field(pattern=CALLBACK_DATA)]


ButtonRow = Annotated[list[UrlButton | CallbackButton], Field(min_length=1, max_length=8)]
Buttons = Annotated[list[ButtonRow], Field(max_length=10, description="inline keyboard, row by row")]


def _unique_in_order(chat_ids: list[int] | None) -> list[int] | None:
    return list(dict.fromkeys(chat_ids)) if chat_ids is not None else None


ChatIds = Annotated[
    list[ChatId] | None,
    Field(min_length=1, max_length=1000),
    AfterValidator(_unique_in_order),
]


class BroadcastJob(Message):
    kind: Literal["broadcast"] = "broadcast"
    content: Content
    buttons: Buttons = []
    chat_ids: ChatIds = Field(None, description="None: every active managed group when the job runs")
    api_key_id: int | None = None  # who asked, for the audit trail

    @property
    def job_id(self) -> str:
        return self.message_id
