"""Shared-secret checks below every entrypoint: tokens, webhook secrets and API keys.

Every comparison runs in constant time (`hmac.compare_digest`), so response timing never tells an
attacker how much of a guess was right. The API layer wraps these in FastAPI dependencies; capabilities
call them directly.
"""

from __future__ import annotations

import hashlib
import hmac

from tgops.config import PLACEHOLDER


def secrets_match(given: str | None, expected: str) -> bool:
    """A configured secret that is empty or still the placeholder matches nothing."""
    if not given or not expected or expected == PLACEHOLDER:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def hash_secret(secret: str) -> str:
    """What the database stores instead of a secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches_hash(given: str | None, stored_hash: str | None) -> bool:
    if not given or not stored_hash:
        return False
    return hmac.compare_digest(hash_secret(given).encode(), stored_hash.encode())
