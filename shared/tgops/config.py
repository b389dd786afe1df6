"""Settings: every knob of tgops, read from `TGOPS_*` environment variables (or a `.env` file).

Defaults are the ones fixed in ARCHITECTURE.md. Secrets are `SecretStr`, so they never print.
Outside development a secret still holding its placeholder refuses to start.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER = "change-me"
SECRET_FIELDS = (
    "telegram_bot_token",
    "telegram_webhook_secret",
    "provider_token",
    "admin_token",
    "session_encryption_key",
)
ENV_PREFIX = "TGOPS_"


class SettingsError(Exception):
    """A setting is missing or wrong; the message names it as an environment variable."""


class ServiceRule(BaseModel):
    """What an order link must be for one panel service (`TGOPS_ORDER_SERVICE_RULES`, JSON by service id)."""

    model_config = ConfigDict(extra="forbid")

    link_kinds: list[Literal["public", "post", "private_post", "invite", "bot"]] | None = None  # None: any
    chat_types: list[Literal["channel", "supergroup", "group", "user", "bot"]] | None = None
    visibility: Literal["any", "public", "private"] = "any"
    allow_paid: bool = False
    allow_join_request: bool = True
    bot: Literal["any", "required", "forbidden"] = "any"
    # Execution (issue 12): what a validated order of this service does. `action` None: the service's
    # TGOPS_PROVIDER_SERVICE_ACTIONS entry, else TGOPS_PROVIDER_DEFAULT_ACTION (subscribe). Without
    # `auto_start` a validated order waits for the panel (or `tgops orders start ID`). The start count
    # is the chat's participant count from the inspection, the panel's figure, or zero.
    action: str | None = Field(None, min_length=1, max_length=64)
    per_call: int = Field(1, ge=1, le=10_000)
    interval_seconds: int = Field(60, ge=1, le=86_400)
    auto_start: bool = True
    start_count: Literal["participants", "panel", "zero"] = "participants"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", validate_default=True
    )

    env: Literal["development", "test", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    data_dir: Path = Path(".tgops")

    # Postgres: unset means "start the embedded one" (tgops dev) or "no database" elsewhere.
    database_url: str | None = None
    database_transaction_pooler: bool | None = None  # None: detect Supabase's pooler port 6543
    database_pool_min: int = Field(1, ge=0)
    database_pool_max: int = Field(10, ge=1)
    database_connect_timeout_sec: float = Field(5.0, gt=0)

    # Redis: redis-py over `redis_url`, or Upstash REST when its URL and token are set.
    redis_url: str | None = None
    upstash_redis_rest_url: str | None = None
    upstash_redis_rest_token: SecretStr | None = None

    # AWS / SQS: `sqs_endpoint_url` points at a local emulator; queues are `<queue_prefix><name>`.
    aws_region: str = "us-east-1"
    sqs_endpoint_url: str | None = None
    queue_prefix: str = "tgops-"

    # Local API
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    dev_schedule_period_sec: float | None = Field(None, gt=0)  # tgops dev: every schedule this often

    # Secrets
    telegram_bot_token: SecretStr = SecretStr(PLACEHOLDER)
    telegram_webhook_secret: SecretStr = SecretStr(PLACEHOLDER)
    provider_token: SecretStr = SecretStr(PLACEHOLDER)
    admin_token: SecretStr = SecretStr(PLACEHOLDER)
    session_encryption_key: SecretStr = SecretStr(PLACEHOLDER)

    # Telegram test environment (custom data centre) for the MTProto pool
    telegram_api_id: int | None = None
    telegram_api_hash: SecretStr | None = None
    telegram_dc_id: int | None = None
    telegram_dc_address: str | None = None
    telegram_dc_port: int | None = None
    telegram_server_public_key: str | None = None
    # A simulated Telegram for local runs (tgops.telegram.simulated); None: simulated exactly when
    # TGOPS_ENV=development and neither TGOPS_TELEGRAM_API_ID nor TGOPS_TELEGRAM_API_HASH is set.
    telegram_simulated: bool | None = None

    # MTProto pool (seed 000/001)
    proxy_mode: Literal["rotating", "static"] = "rotating"
    proxy_throttle_sec: float = Field(2, gt=0)
    proxy_throttle_max_wait_inspect_sec: float = Field(8, ge=0)
    proxy_throttle_max_wait_sec: float = Field(60, ge=0)
    call_deadline_ms: int = Field(30000, gt=0)
    call_deadline_inspect_ms: int = Field(15000, gt=0)
    max_accounts_to_try_per_call: int = Field(4, ge=1)
    stream_closed_cooldown_sec: int = Field(60, ge=0)
    unknown_error_cooldown_sec: int = Field(60, ge=0)
    peer_flood_cooldown_sec: int = Field(86400, ge=0)

    # Order validation (seed 000)
    inspect_job_timeout_sec: int = Field(180, gt=0)
    inspect_max_tries: int = Field(5, ge=1)
    inspect_backoff_sec: list[int] = [10, 30, 60, 120, 300]
    inspection_cache_ttl_sec: int = Field(600, ge=0)
    dispatch_jitter_max_sec: int = Field(50, ge=0)
    max_validate_dispatch_per_run: int = Field(250, ge=1)
    validate_dispatch_dedupe_sec: int = Field(90, gt=0)
    validate_group_lock_sec: int = Field(90, gt=0)

    # Orders: SMM panel polling and link validation (issue 3 part B). Service rules are keyed by the
    # panel's remote service id; a service without one is only checked for a link that exists.
    panel_base_url: str | None = None
    panel_api_key: SecretStr | None = None
    panel_poll_statuses: list[
        Literal[
            "validating",
            "depends_ok",
            "depends_failed",
            "awaiting",
            "in_progress",
            "pending",
            "completed",
            "partial",
            "canceled",
        ]
    ] = ["validating", "awaiting", "in_progress", "pending", "canceled"]
    panel_service_ids: list[int] = []  # empty: one request per status for every service
    panel_page_limit: int = Field(1000, ge=1)
    panel_timeout_sec: float = Field(10, gt=0)
    poll_lock_sec: int = Field(60, gt=0)  # outlives the poll_orders Lambda (50 s) that may die holding it
    validation_claim_batch: int = Field(100, ge=1)  # orders of one group claimed per job
    # A validation job renews its claim (heartbeat) while it runs; one not renewed this long is stale.
    validation_claim_stale_sec: int = Field(60, gt=0)
    order_service_rules: dict[int, ServiceRule] = {}
    panel_max_pages: int = Field(1000, ge=1)  # pages of one status read per poll

    # Orders: lifecycle and the panel outbox (issue 12). A failed report whose error names one of the
    # definite link errors counts against its order; at the threshold the link is inspected again.
    order_definite_link_errors: list[str] = [
        "CHANNEL_PRIVATE", "CHANNEL_INVALID", "CHAT_INVALID", "USERNAME_NOT_OCCUPIED", "USERNAME_INVALID",
        "INVITE_HASH_EXPIRED", "INVITE_HASH_INVALID", "MESSAGE_ID_INVALID", "LINK_INVALID",
    ]  # fmt: skip
    order_link_failures_before_recheck: int = Field(3, ge=1)
    panel_update_batch: int = Field(200, ge=1)  # updates one flush sends
    panel_update_claim_sec: int = Field(60, gt=0)  # a flusher that dies mid-send: another resends after this
    panel_update_backoff_sec: list[int] = [5, 15, 60, 300, 900]  # then the last one, for as long as it takes

    # Provider pull (seed 002)
    task_lease_sec: int = Field(60, gt=0)
    reserve_lock_sec: int = Field(120, gt=0)
    link_state_ttl_days: int = Field(90, gt=0)

    # Provider pull: actions and their limits (issue 5). An order's action is its `action` column,
    # else the one mapped from its remote service id, else the default. Cap 0 means no daily cap.
    provider_default_action: str = "subscribe"
    provider_service_actions: dict[int, str] = {}
    provider_action_cooldown_sec: dict[str, int] = {
        "subscribe": 60,
        "unsubscribe": 60,
        "view": 5,
        "react": 30,
    }
    provider_default_cooldown_sec: int = Field(60, ge=0)
    provider_action_daily_cap: dict[str, int] = {
        "subscribe": 50,
        "unsubscribe": 50,
        "view": 500,
        "react": 200,
    }
    provider_default_daily_cap: int = Field(0, ge=0)
    provider_one_shot_actions: list[str] = ["view", "react", "vote"]
    provider_max_batch: int = Field(1000, ge=1)  # pull limit, accounts per sync, reports per batch
    provider_commit_marker_ttl_sec: int = Field(7 * 86400, gt=0)
    provider_reserve_candidates: int = Field(50, ge=1)  # accounts offered to one RESERVE call
    provider_generate_limit: int = Field(1000, ge=1)  # orders one scheduled generation run handles

    # Account setup (seed 003)
    setup_backoff_sec: list[int] = [60, 300, 900, 3600]

    # Broadcaster and DM bot (seed 004)
    broadcast_global_rate_per_sec: float = Field(5, gt=0)
    broadcast_group_spacing_sec: float = Field(3, ge=0)
    broadcast_private_spacing_sec: float = Field(1, ge=0)
    broadcast_max_consecutive_failures: int = Field(3, ge=1)
    dm_rate_limit_commands: int = Field(10, ge=1)
    dm_rate_limit_window_sec: int = Field(60, gt=0)
    dm_daily_points: int = Field(10, ge=0)
    dm_live_check_cost: int = Field(1, ge=0)
    dm_referral_points: int = Field(10, ge=0)

    # Ingress
    webhook_dedupe_ttl_sec: int = Field(300, gt=0)

    # Public API keys (issue 4 part B): hits allowed per key per window, unless the key sets its own
    api_key_rate_limit: int = Field(60, ge=1)
    api_key_rate_window_sec: int = Field(60, ge=1)

    @field_validator("database_url")
    @classmethod
    def _postgres_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("postgres://", "postgresql://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("upstash_redis_rest_url", "sqs_endpoint_url")
    @classmethod
    def _http_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s):// URL")
        return value

    @model_validator(mode="after")
    def _no_placeholder_secrets_outside_development(self) -> Settings:
        if self.env == "development":
            return self
        for name in SECRET_FIELDS:
            if getattr(self, name).get_secret_value() in ("", PLACEHOLDER):
                raise ValueError(f"{env_name(name)} must be set to a real secret when TGOPS_ENV={self.env}")
        return self

    @model_validator(mode="after")
    def _telegram_never_simulated_in_production(self) -> Settings:
        if self.env == "production" and self.telegram_simulated:
            raise ValueError(f"{env_name('telegram_simulated')} must not be true when TGOPS_ENV=production")
        return self

    @property
    def uses_simulated_telegram(self) -> bool:
        if self.telegram_simulated is not None:
            return self.telegram_simulated
        return self.env == "development" and self.telegram_api_id is None and self.telegram_api_hash is None

    @property
    def uses_transaction_pooler(self) -> bool:
        if self.database_transaction_pooler is not None:
            return self.database_transaction_pooler
        return bool(self.database_url and ":6543" in self.database_url)

    @property
    def uses_upstash(self) -> bool:
        return bool(self.upstash_redis_rest_url and self.upstash_redis_rest_token)

    def queue_name(self, logical_name: str) -> str:
        return f"{self.queue_prefix}{logical_name}"


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def describe_validation_error(error: ValidationError) -> str:
    """One line per bad setting, named as the environment variable an operator would set."""
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{env_name(field)}: {message}" if field else message)
    return "; ".join(lines)


@lru_cache
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(describe_validation_error(error)) from None
