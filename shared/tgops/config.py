"""Settings: every knob of tgops, read from `TGOPS_*` environment variables (or a `.env` file).

Defaults are the ones fixed in ARCHITECTURE.md. Secrets are `SecretStr`, so they never print.
Outside development a secret still holding its placeholder refuses to start, and in production so does
a weak admin or provider token; every such secret is named in one error.
"""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

PLACEHOLDER = "change-me"
SECRET_FIELDS = (
    "telegram_bot_token",
    "telegram_webhook_secret",
    "provider_token",
    "admin_token",
    "session_encryption_key",
)
ENV_PREFIX = "TGOPS_"
# Tokens an outsider presents to us (api area): in production long and random enough that guessing is
# hopeless. The estimate is length x the Shannon entropy of its characters, so "aaaa..." or a word
# repeated fails however long it is; 32 random hex digits (128 bits) estimate about 118.
STRONG_TOKEN_FIELDS = ("provider_token", "admin_token")
MIN_TOKEN_LENGTH = 32
MIN_TOKEN_ENTROPY_BITS = 100


# The account setup pipeline's tasks (seed 003), in the order a new account runs them.
SetupTaskType = Literal[
    "ensure_2fa",
    "update_name",
    "privacy_phone_hidden",
    "privacy_last_seen_everybody",
    "set_photo_jpg",
    "set_photo_animated",
    "story_image",
    "story_video",
]


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
    # Logging (tgops.logs): JSON lines (Powertools) or readable ones; auto is JSON on AWS only
    log_format: Literal["auto", "json", "console"] = "auto"
    data_dir: Path = Path(".tgops")

    # Postgres: unset means "start the embedded one" (tgops dev) or "no database" elsewhere.
    database_url: str | None = None
    database_transaction_pooler: bool | None = None  # None: detect Supabase's pooler port 6543
    database_pool_min: int = Field(1, ge=0)
    database_pool_max: int = Field(10, ge=1)
    database_connect_timeout_sec: float = Field(5.0, gt=0)
    # Per role of the connection (api area), in ms, 0 for none: API requests answer 503 rather than wait
    # out API Gateway's 29 s; workers and schedules may wait longer. A transaction left idle (a process
    # frozen mid-request) is ended by the server, releasing its locks.
    database_api_statement_timeout_ms: int = Field(5000, ge=0)
    database_api_lock_timeout_ms: int = Field(2000, ge=0)
    database_worker_statement_timeout_ms: int = Field(60000, ge=0)
    database_worker_lock_timeout_ms: int = Field(10000, ge=0)
    database_idle_in_transaction_timeout_ms: int = Field(30000, ge=0)

    # Redis: redis-py over `redis_url`, or Upstash REST when its URL and token are set.
    redis_url: str | None = None
    upstash_redis_rest_url: str | None = None
    upstash_redis_rest_token: SecretStr | None = None

    # AWS / SQS: `sqs_endpoint_url` points at a local emulator; queues are `<queue_prefix><name>`.
    aws_region: str = "us-east-1"
    sqs_endpoint_url: str | None = None
    queue_prefix: str = "tgops-"

    # Queues (issue 11): "sqs" is SQS (or the emulator at sqs_endpoint_url); "postgres" is the durable
    # local backend on database_url (tgops.messaging.pg_queues). None: SQS, except that `tgops dev`
    # without TGOPS_SQS_ENDPOINT_URL sets "postgres" for itself and for the commands run beside it.
    queue_backend: Literal["sqs", "postgres"] | None = None

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

    # Account fleet (issue 17): session envelope encryption, setup pipeline, its media.
    session_kms_key_id: str | None = None  # set on AWS: data keys from KMS; unset: the local key wraps them
    kms_endpoint_url: str | None = None
    setup_enabled: bool = False
    setup_tasks: list[SetupTaskType] = list(get_args(SetupTaskType))
    setup_2fa_enable: bool = False  # set a 2FA password where none is (from the task payload or the secret)
    setup_2fa_password: SecretStr | None = None
    setup_2fa_hint: str = ""
    setup_first_name: str | None = None  # a task payload's first_name/last_name wins
    setup_last_name: str = ""
    setup_media_dir: Path | None = None  # development: media files under this folder
    setup_media_bucket: str | None = None  # AWS: media objects in this S3 bucket
    setup_photo_jpg: str = "photo.jpg"
    setup_photo_animated: str = "avatar.mp4"  # an MP4, or a GIF converted to MP4 before upload
    setup_story_image: str = "story.jpg"
    setup_story_video: str = "story.mp4"
    setup_dispatch_limit: int = Field(5000, ge=1)  # tasks enqueued per dispatch run
    setup_enqueue_stale_sec: int = Field(3600, gt=0)  # an enqueued task not run by then is enqueued again
    setup_story_limit_retry_sec: int = Field(86400, gt=0)  # STORIES_TOO_MUCH: try again this much later
    dev_simulated_action_accounts: int = Field(
        0, ge=0
    )  # tgops dev, simulated Telegram: action accounts to seed
    dev_simulated_banned_accounts: int = Field(0, ge=0)  # ... of which this many are banned

    # Broadcaster and DM bot (seed 004)
    broadcast_rate_per_sec: float = Field(5, gt=0)
    broadcast_group_spacing_sec: float = Field(3, ge=0)
    broadcast_private_spacing_sec: float = Field(1, ge=0)
    broadcast_max_consecutive_failures: int = Field(3, ge=1)
    dm_rate_limit_commands: int = Field(10, ge=1)
    dm_rate_limit_window_sec: int = Field(60, gt=0)
    dm_daily_points: int = Field(10, ge=0)
    dm_live_check_cost: int = Field(1, ge=0)
    dm_referral_points: int = Field(10, ge=0)
    # The DM bot: the main bot's @username (else asked with getMe), and the public URL webhooks are set
    # to (cloned bots included).
    telegram_bot_username: str | None = None
    public_base_url: str | None = None

    # Bots (issue 13): the Bot API client, its shared limiter, the broadcaster and group management.
    # Telegram's own ceilings (30 messages/s per bot, 20/min per group) hold whatever these say. The base
    # URL may name a self-hosted telegram-bot-api server, or a fake one in tests.
    telegram_bot_api_base_url: str = "https://api.telegram.org/bot"
    bot_priority_reserved_share: float = Field(0.2, gt=0, lt=1)  # of 30/s, never given to broadcasts
    bot_api_timeout_sec: float = Field(10, gt=0)
    broadcast_run_budget_sec: float = Field(90, gt=0)  # then the job continues in a fresh message
    broadcast_parallelism: int = Field(1, ge=1)  # consumers one job is fanned out to
    broadcast_unconfirmed_after_sec: float = Field(120, gt=0)  # a send in flight this long is unknown
    group_decision_interval_sec: float = Field(1, ge=0)  # join-request decisions per group
    group_decision_wait_sec: float = Field(4, ge=0)  # per message: 10 in a batch stay inside 60 s
    group_member_count_interval_min: int = Field(60, ge=1)
    group_kick_interval_min: int = Field(60, ge=1)
    # Join-request backfill through the group's admin account (groups area): at most one per interval per
    # group, a refused group (not an admin, no such chat) asked again only after the refusal retry.
    group_backfill_interval_min: int = Field(60, ge=1)
    group_backfill_refused_retry_min: int = Field(1440, ge=1)
    group_backfill_page_size: int = Field(100, ge=1, le=100)  # Telegram's limit per getChatInviteImporters
    group_backfill_pages_per_message: int = Field(10, ge=1)  # then it goes on in a fresh message
    group_backfill_max_tries: int = Field(5, ge=1)  # failures other than Telegram's flood limits

    # Ingress (api area). An update's claim is pending, this short, until its send is confirmed, and only
    # then kept for the dedupe TTL: a process killed mid-send holds Telegram's retries back this long at
    # most. The whole send (retries included) is cut off well inside API Gateway's 29 s.
    webhook_dedupe_ttl_sec: int = Field(300, gt=0)
    webhook_pending_claim_sec: float = Field(15, gt=0)
    webhook_enqueue_timeout_sec: float = Field(8, gt=0)
    webhook_unhandled_count_ttl_sec: int = Field(86400, gt=0)  # webhook:unhandled:{type} counts per day

    # API surface (api area): failed authentications (admin, provider, API key) allowed per client per
    # window before 429; the largest request body any route takes (413 beyond, before parsing).
    auth_failure_limit: int = Field(10, ge=1)
    auth_failure_window_sec: int = Field(300, ge=1)
    api_max_body_bytes: int = Field(1024 * 1024, ge=1)

    # Public API keys (issue 4 part B): hits allowed per key per window, unless the key sets its own
    api_key_rate_limit: int = Field(60, ge=1)
    api_key_rate_window_sec: int = Field(60, ge=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment first, then the Secrets Manager secret named by TGOPS_SECRETS_NAME, then `.env`."""
        from tgops.secrets_source import SecretsManagerSource

        return (
            init_settings,
            env_settings,
            SecretsManagerSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

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
    def _pending_claim_outlives_the_send(self) -> Settings:
        if self.webhook_pending_claim_sec <= self.webhook_enqueue_timeout_sec:
            raise ValueError(
                f"{env_name('webhook_pending_claim_sec')} must be longer than "
                f"{env_name('webhook_enqueue_timeout_sec')}: a claim must not expire while its send may still run"
            )
        return self

    @model_validator(mode="after")
    def _ready_for_its_environment(self) -> Settings:
        """Every missing or weak secret (and production's other refusals) in one error, not one per run."""
        problems = [] if self.env == "development" else self._secret_problems()
        if self.env == "production" and self.telegram_simulated:
            problems.append(f"{env_name('telegram_simulated')} must not be true when TGOPS_ENV=production")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _secret_problems(self) -> list[str]:
        problems = []
        for name in SECRET_FIELDS:
            value = getattr(self, name).get_secret_value()
            if value in ("", PLACEHOLDER):
                problems.append(f"{env_name(name)} must be set to a real secret when TGOPS_ENV={self.env}")
            elif self.env == "production" and name in STRONG_TOKEN_FIELDS and not is_strong_token(value):
                problems.append(
                    f"{env_name(name)} is too weak: use at least {MIN_TOKEN_LENGTH} random characters, "
                    "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
        return problems

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


def estimated_entropy_bits(token: str) -> float:
    counts = Counter(token)
    return -sum(count * math.log2(count / len(token)) for count in counts.values())


def is_strong_token(token: str) -> bool:
    return len(token) >= MIN_TOKEN_LENGTH and estimated_entropy_bits(token) >= MIN_TOKEN_ENTROPY_BITS


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
    from tgops.secrets_source import SecretsUnavailable

    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(describe_validation_error(error)) from None
    except SecretsUnavailable as error:
        raise SettingsError(str(error)) from None
