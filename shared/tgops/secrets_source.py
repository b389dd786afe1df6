"""Settings read at run time from one AWS Secrets Manager secret (a JSON object of setting names).

On AWS no secret passes through an environment variable, the template or the stack's parameters:
`TGOPS_SECRETS_NAME` names the secret, and this source fetches it once per process through Powertools
parameters (cached). Its keys are setting names without the prefix (`database_url`, `telegram_bot_token`,
...); an environment variable of the same setting still wins, so a local run can override one.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

log = logging.getLogger(__name__)
SECRETS_NAME_ENV = "TGOPS_SECRETS_NAME"


class SecretsUnavailable(Exception):
    """The named secret cannot be read; the message names TGOPS_SECRETS_NAME."""


class SecretsManagerSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        name = os.environ.get(SECRETS_NAME_ENV, "").strip()
        self._values = _fetch(name, set(settings_cls.model_fields)) if name else {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


def _fetch(name: str, fields: set[str]) -> dict[str, Any]:
    from aws_lambda_powertools.utilities.parameters import get_secret
    from aws_lambda_powertools.utilities.parameters.exceptions import (
        GetParameterError,
        TransformParameterError,
    )

    try:
        values = get_secret(name, transform="json")
    except (GetParameterError, TransformParameterError) as error:
        # The SDK's message names the secret, never its value.
        raise SecretsUnavailable(
            f"{SECRETS_NAME_ENV}: cannot read secret {name!r}: {type(error).__name__}"
        ) from None
    if not isinstance(values, dict):
        raise SecretsUnavailable(f"{SECRETS_NAME_ENV}: secret {name!r} is not a JSON object")
    unknown = sorted(key for key in values if key not in fields)
    if unknown:
        log.warning("secret %s holds keys that are no setting: %s", name, ", ".join(unknown))
    return {key: value for key, value in values.items() if key in fields}
