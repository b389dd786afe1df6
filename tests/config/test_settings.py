import pytest
from pydantic import ValidationError

from tgops.config import PLACEHOLDER, Settings, SettingsError, describe_validation_error, get_settings

SECRETS = {
    "TGOPS_TELEGRAM_BOT_TOKEN": "123:abc",
    "TGOPS_TELEGRAM_WEBHOOK_SECRET": "hook-secret",
    "TGOPS_PROVIDER_TOKEN": "pv_Qm9yZGVyLXRva2VuLWZvci10ZXN0cy0zMmJ5dGVzISE",
    "TGOPS_ADMIN_TOKEN": "ad_dGhpcy1pcy1hbi1hZG1pbi10b2tlbi1vZi0zMmJ5dGVz",
    "TGOPS_SESSION_ENCRYPTION_KEY": "key-material",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env file
    for name in list(__import__("os").environ):
        if name.startswith("TGOPS_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_defaults_follow_the_architecture():
    settings = Settings()
    assert settings.env == "development"
    assert settings.proxy_mode == "rotating"
    assert settings.proxy_throttle_sec == 2
    assert settings.proxy_throttle_max_wait_inspect_sec == 8
    assert settings.proxy_throttle_max_wait_sec == 60
    assert (settings.call_deadline_ms, settings.call_deadline_inspect_ms) == (30000, 15000)
    assert settings.max_accounts_to_try_per_call == 4
    assert settings.inspect_job_timeout_sec == 180
    assert settings.inspect_max_tries == 5
    assert settings.inspect_backoff_sec == [10, 30, 60, 120, 300]
    assert settings.dispatch_jitter_max_sec == 50
    assert settings.max_validate_dispatch_per_run == 250
    assert settings.stream_closed_cooldown_sec == settings.unknown_error_cooldown_sec == 60
    assert (settings.task_lease_sec, settings.reserve_lock_sec, settings.link_state_ttl_days) == (60, 120, 90)
    assert settings.setup_backoff_sec == [60, 300, 900, 3600]
    assert settings.broadcast_rate_per_sec == 5
    assert (settings.broadcast_group_spacing_sec, settings.broadcast_private_spacing_sec) == (3, 1)
    assert settings.broadcast_max_consecutive_failures == 3
    assert (settings.dm_rate_limit_commands, settings.dm_rate_limit_window_sec) == (10, 60)
    assert (settings.dm_daily_points, settings.dm_live_check_cost, settings.dm_referral_points) == (10, 1, 10)
    assert settings.webhook_dedupe_ttl_sec == 300


def test_environment_overrides_with_prefix(monkeypatch):
    monkeypatch.setenv("TGOPS_PROXY_THROTTLE_SEC", "3.5")
    monkeypatch.setenv("TGOPS_INSPECT_BACKOFF_SEC", "[1, 2]")
    settings = Settings()
    assert settings.proxy_throttle_sec == 3.5
    assert settings.inspect_backoff_sec == [1, 2]


def test_secrets_never_print(monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    text = repr(settings) + str(settings.model_dump())
    for value in SECRETS.values():
        assert value not in text
    assert settings.provider_token.get_secret_value() == SECRETS["TGOPS_PROVIDER_TOKEN"]


@pytest.mark.parametrize("env", ["test", "production"])
def test_placeholder_secrets_refused_outside_development(monkeypatch, env):
    monkeypatch.setenv("TGOPS_ENV", env)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    assert Settings().env == env
    monkeypatch.setenv("TGOPS_ADMIN_TOKEN", PLACEHOLDER)
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert "TGOPS_ADMIN_TOKEN" in describe_validation_error(raised.value)


def test_placeholders_allowed_in_development():
    assert Settings().admin_token.get_secret_value() == PLACEHOLDER


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TGOPS_DATABASE_URL", "mysql://x"),
        ("TGOPS_REDIS_URL", "http://x"),
        ("TGOPS_SQS_ENDPOINT_URL", "ftp://x"),
        ("TGOPS_PROXY_MODE", "sideways"),
        ("TGOPS_API_PORT", "0"),
        ("TGOPS_PROXY_THROTTLE_SEC", "soon"),
    ],
)
def test_bad_setting_gives_one_line_naming_it(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        get_settings()
    message = str(raised.value)
    assert message.startswith(name + ":")
    assert "\n" not in message


def test_transaction_pooler_detection(monkeypatch):
    monkeypatch.setenv("TGOPS_DATABASE_URL", "postgresql://u:p@aws-0-eu.pooler.supabase.com:6543/postgres")
    assert Settings().uses_transaction_pooler is True
    monkeypatch.setenv("TGOPS_DATABASE_URL", "postgresql://u:p@db.example.supabase.co:5432/postgres")
    assert Settings().uses_transaction_pooler is False
    monkeypatch.setenv("TGOPS_DATABASE_TRANSACTION_POOLER", "true")
    assert Settings().uses_transaction_pooler is True


def test_get_settings_is_cached():
    assert get_settings() is get_settings()


def test_a_pending_webhook_claim_must_outlive_its_send(monkeypatch):
    monkeypatch.setenv("TGOPS_WEBHOOK_PENDING_CLAIM_SEC", "5")
    monkeypatch.setenv("TGOPS_WEBHOOK_ENQUEUE_TIMEOUT_SEC", "5")

    with pytest.raises(SettingsError, match="TGOPS_WEBHOOK_PENDING_CLAIM_SEC must be longer than"):
        get_settings()


@pytest.mark.parametrize(
    "weak",
    [
        "short-but-random-Xq9",  # too short
        "a" * 64,  # long, one character
        "passwordpasswordpasswordpassword",  # long, few characters repeated
    ],
)
@pytest.mark.parametrize("name", ["TGOPS_ADMIN_TOKEN", "TGOPS_PROVIDER_TOKEN"])
def test_production_refuses_weak_admin_and_provider_tokens(monkeypatch, name, weak):
    monkeypatch.setenv("TGOPS_ENV", "production")
    for secret, value in SECRETS.items():
        monkeypatch.setenv(secret, value)
    monkeypatch.setenv(name, weak)

    with pytest.raises(SettingsError) as raised:
        get_settings()

    assert f"{name} is too weak" in str(raised.value)
    assert weak not in str(raised.value)


def test_a_weak_token_is_accepted_outside_production(monkeypatch):
    monkeypatch.setenv("TGOPS_ENV", "test")
    for secret, value in SECRETS.items():
        monkeypatch.setenv(secret, value)
    monkeypatch.setenv("TGOPS_ADMIN_TOKEN", "short")

    assert get_settings().admin_token.get_secret_value() == "short"


def test_production_lists_every_missing_or_weak_secret_in_one_error(monkeypatch):
    monkeypatch.setenv("TGOPS_ENV", "production")
    monkeypatch.setenv("TGOPS_TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("TGOPS_ADMIN_TOKEN", "admin")

    with pytest.raises(SettingsError) as raised:
        get_settings()

    message = str(raised.value)
    for missing in (
        "TGOPS_TELEGRAM_WEBHOOK_SECRET",
        "TGOPS_PROVIDER_TOKEN",
        "TGOPS_SESSION_ENCRYPTION_KEY",
    ):
        assert f"{missing} must be set" in message
    assert "TGOPS_ADMIN_TOKEN is too weak" in message
    assert "TGOPS_TELEGRAM_BOT_TOKEN" not in message
    assert "\n" not in message
