"""Accounts sync: providers upsert their Telegram accounts by `provider_account_id`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tgops.db.params import jsonb
from tgops.validation import describe

if TYPE_CHECKING:
    from tgops.db.database import Database


class SyncedAccount(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    provider_account_id: str = Field(min_length=1, max_length=255)
    phone: str | None = Field(None, max_length=64)
    is_active: bool = True
    meta: dict[str, Any] = {}

    @field_validator("meta", mode="before")
    @classmethod
    def _null_meta_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


@dataclass
class SyncResult:
    synced: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


async def sync_accounts(db: Database, items: list[Any]) -> SyncResult:
    """Upsert every valid item in one statement; each invalid one is reported and skipped."""
    result = SyncResult()
    accounts: dict[str, SyncedAccount] = {}  # a repeated id within one call: the last item wins
    for index, item in enumerate(items):
        try:
            account = SyncedAccount.model_validate(item)
        except ValidationError as error:
            result.errors.append(_item_error(index, item, error))
            continue
        accounts[account.provider_account_id] = account
    if accounts:
        rows = [account.model_dump() for account in accounts.values()]
        await db.execute("upsert_telegram_accounts", {"accounts": jsonb(rows)})
    result.synced = len(accounts)
    return result


def _item_error(index: int, item: Any, error: ValidationError) -> dict[str, Any]:
    problems = describe(error, whole="item")
    account_id = item.get("provider_account_id") if isinstance(item, dict) else None
    return {"index": index, "provider_account_id": account_id, "error": problems}
