"""Errors any entrypoint may stop on, kept apart from the modules that raise them (so the CLI can catch
them without importing the dev-only tgops.local)."""

from __future__ import annotations


class StartupError(Exception):
    """A process cannot start; the message is one line naming the setting to fix."""
