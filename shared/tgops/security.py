"""Shared secrets: constant-time comparison and what the database stores instead of a secret."""

from __future__ import annotations

import hashlib
import hmac

from tgops.config import PLACEHOLDER


def secrets_match(given: str | None, expected: str) -> bool:
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
