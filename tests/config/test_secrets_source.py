"""Settings from one Secrets Manager secret at run time (moto), under the environment's overrides."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from tgops.config import SettingsError, get_settings

SECRET = {
    "database_url": "postgresql://user@db.example:6543/postgres",
    "telegram_bot_token": "123456:" + "S" * 35,
    "admin_token": "from-the-secret",
    "not_a_setting": "ignored",
}


@pytest.fixture
def secret(monkeypatch):
    for name in ("TGOPS_DATABASE_URL", "TGOPS_ADMIN_TOKEN", "TGOPS_TELEGRAM_BOT_TOKEN", "TGOPS_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="tgops/test", SecretString=json.dumps(SECRET)
        )
        monkeypatch.setenv("TGOPS_SECRETS_NAME", "tgops/test")
        get_settings.cache_clear()
        yield
    get_settings.cache_clear()


def test_settings_come_from_the_named_secret(secret):
    settings = get_settings()
    assert settings.database_url == SECRET["database_url"]
    assert settings.telegram_bot_token.get_secret_value() == SECRET["telegram_bot_token"]
    assert settings.uses_transaction_pooler


def test_an_environment_variable_still_wins_over_the_secret(secret, monkeypatch):
    monkeypatch.setenv("TGOPS_ADMIN_TOKEN", "from-the-environment")
    get_settings.cache_clear()
    assert get_settings().admin_token.get_secret_value() == "from-the-environment"


def test_a_missing_secret_stops_start_up_naming_the_setting(secret, monkeypatch):
    monkeypatch.setenv("TGOPS_SECRETS_NAME", "tgops/nope")
    get_settings.cache_clear()
    with pytest.raises(SettingsError, match="TGOPS_SECRETS_NAME: cannot read secret 'tgops/nope'") as raised:
        get_settings()
    assert "from-the-secret" not in str(raised.value)
