"""What a running `tgops dev` holds and set for itself, for the commands run beside it.

`tgops dev` holds an exclusive lock (flock) on `<data_dir>/dev.lock` for its whole life, with its PID
and API URL written in the file, so a second one in the same folder finds it and refuses to start.
It generates the local provider token, admin token and webhook secret once (`<data_dir>/dev-tokens.json`).
It writes the TGOPS_* values it set for itself (embedded URLs, the fake panel's key, the local
secrets...) to `<data_dir>/dev.json`, readable by its user only, and removes it when it stops; a command
run in the same folder reads them (tgops.cli.support). The values count only while the lock is held:
the file of a `tgops dev` killed with -9 is ignored.

Standard library only: every command imports this, on any machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

STATE_FILE = "dev.json"
LOCK_FILE = "dev.lock"
TOKENS_FILE = "dev-tokens.json"
TOKEN_BYTES = 32
LOCAL_TOKENS = {  # the variable, and how a client sends it
    "TGOPS_PROVIDER_TOKEN": "X-Provider-Token: <token> (the provider API, /api/provider/...)",
    "TGOPS_ADMIN_TOKEN": "Authorization: Bearer <token> (the admin API, /admin/...)",
    "TGOPS_TELEGRAM_WEBHOOK_SECRET": "X-Telegram-Bot-Api-Secret-Token: <token> (POST /api/webhooks/telegram)",
}
LOCK_ATTEMPTS = 10  # a command probing the lock holds it shared for an instant: try again briefly
LOCK_RETRY_SEC = 0.05


@dataclass(frozen=True)
class RunningDev:
    pid: int | None
    url: str | None

    def describe(self) -> str:
        return f"pid {self.pid or 'unknown'}, {self.url or 'URL unknown'}"


class AlreadyRunning(Exception):
    def __init__(self, data_dir: Path, running: RunningDev) -> None:
        super().__init__(
            f"tgops dev already runs from {data_dir} ({running.describe()}); it keeps running. "
            "Use it, stop it first, or set TGOPS_DATA_DIR to start another one elsewhere"
        )
        self.running = running


class DevLock:
    """The exclusive lock of one `tgops dev` on its data directory, released when the process ends
    however it ends (the kernel drops a flock with its last file descriptor)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, url: str) -> None:
        """Take the lock and record this process in it; raise AlreadyRunning naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        for attempt in range(LOCK_ATTEMPTS):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == LOCK_ATTEMPTS - 1:
                    os.close(fd)
                    raise AlreadyRunning(self.path.parent, _holder_in(self.path)) from None
                time.sleep(LOCK_RETRY_SEC)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "url": url}).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock; the file stays, harmless and reused
            self._fd = None


def running_dev(data_dir: Path) -> RunningDev | None:
    """The `tgops dev` holding `data_dir`, or None when none does."""
    path = data_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder_in(path)
    finally:
        os.close(fd)
    return None


def _holder_in(path: Path) -> RunningDev:
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        recorded = {}
    if not isinstance(recorded, dict):
        recorded = {}
    return RunningDev(pid=recorded.get("pid"), url=recorded.get("url"))


def local_tokens(data_dir: Path) -> dict[str, str]:
    """The provider token, admin token and webhook secret of local runs: generated once, then kept in
    `<data_dir>/dev-tokens.json` (mode 0600) so every run and every command uses the same ones."""
    kept = read_local_tokens(data_dir)
    missing = [name for name in LOCAL_TOKENS if name not in kept]
    if missing:
        kept |= {name: secrets.token_urlsafe(TOKEN_BYTES) for name in missing}
        _write_private(data_dir / TOKENS_FILE, kept)
    return {name: kept[name] for name in LOCAL_TOKENS}


def read_local_tokens(data_dir: Path) -> dict[str, str]:
    with contextlib.suppress(OSError, ValueError):
        values = json.loads((data_dir / TOKENS_FILE).read_text())
        if isinstance(values, dict):
            return {name: str(values[name]) for name in LOCAL_TOKENS if values.get(name)}
    return {}


def _write_private(path: Path, values: dict[str, str]) -> None:
    """Write `values` as JSON readable by this user only, from the first byte; replaced whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.unlink(missing_ok=True)
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        json.dump(values, file, indent=2)
    os.replace(partial, path)


def write_dev_state(data_dir: Path, values: dict[str, str]) -> None:
    _write_private(data_dir / STATE_FILE, values)  # it holds the local secrets


def clear_dev_state(data_dir: Path) -> None:
    (data_dir / STATE_FILE).unlink(missing_ok=True)


def read_dev_state(data_dir: Path) -> dict[str, str]:
    """The values of the `tgops dev` running from this folder; empty when none is."""
    if running_dev(data_dir) is None:
        return {}
    with contextlib.suppress(OSError, ValueError):
        values = json.loads((data_dir / STATE_FILE).read_text())
        if isinstance(values, dict):
            return {str(name): str(value) for name, value in values.items()}
    return {}
