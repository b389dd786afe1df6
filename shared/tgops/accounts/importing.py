"""`tgops accounts import FILE`: accounts from CSV, JSON, or Telethon `.session` SQLite files.

- CSV with a header, or JSON (a list of objects, or `{"accounts": [...]}`): `phone` and `session` (a
  Telethon StringSession) per row; optional `role` (`probe` or `action`, default action) and `proxy_type`,
  `proxy_host`, `proxy_port`, `proxy_username`, `proxy_password`.
- A `.session` file, or a folder of them: Telethon's SQLite session, converted to a StringSession; the
  phone is the file name (`+15551234567.session`).

Every row ends imported, skipped (already there, or a duplicate in the file: importing the same file
again changes nothing) or failed, each with its reason. A reason never quotes a session or a password.
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tgops.accounts.fleet import PROXY_TYPES, AccountFleet, Proxy

PHONE = re.compile(r"^\+?\d{7,15}$")
PHONE_NOISE = re.compile(r"[\s\-().]")


class ImportFileError(Exception):
    """The file as a whole cannot be read (missing, unknown format, not CSV/JSON)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One row read from the file: an account to add, or why it cannot be."""

    label: str  # where it is in the file: "line 3", "item 2", "+1555.session"
    phone: str | None = None
    session: str | None = None
    probe: bool = False
    proxy: Proxy | None = None
    problem: str | None = None

    def __repr__(self) -> str:
        return f"Candidate({self.label}, phone={self.phone!r}, session=<hidden>, problem={self.problem!r})"


@dataclass(frozen=True, slots=True)
class Outcome:
    label: str
    phone: str | None
    reason: str


@dataclass
class ImportSummary:
    imported: list[Outcome] = field(default_factory=list)
    skipped: list[Outcome] = field(default_factory=list)
    failed: list[Outcome] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "imported": len(self.imported),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
        }


def read_candidates(path: Path) -> list[Candidate]:
    if path.is_dir():
        files = sorted(path.glob("*.session"))
        if not files:
            raise ImportFileError(f"{path}: a folder with no .session file")
        return [_from_session_file(file) for file in files]
    if not path.exists():
        raise ImportFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".session":
        return [_from_session_file(path)]
    if suffix == ".csv":
        return list(_from_csv(path))
    if suffix == ".json":
        return list(_from_json(path))
    raise ImportFileError(f"{path}: unknown format (expected .csv, .json, .session or a folder of .session)")


async def import_accounts(
    fleet: AccountFleet, candidates: list[Candidate], on_row: Callable[[Outcome], None] | None = None
) -> ImportSummary:
    summary = ImportSummary()
    seen: dict[str, str] = {}
    for candidate in candidates:
        outcome, bucket = await _import_one(fleet, candidate, seen)
        getattr(summary, bucket).append(outcome)
        if on_row:
            on_row(outcome)
    return summary


async def _import_one(fleet: AccountFleet, candidate: Candidate, seen: dict[str, str]) -> tuple[Outcome, str]:
    phone = candidate.phone
    if candidate.problem:
        return Outcome(candidate.label, phone, candidate.problem), "failed"
    if phone in seen:
        return Outcome(candidate.label, phone, f"duplicate of {seen[phone]} in this file"), "skipped"
    seen[phone] = candidate.label
    existing = await fleet.find_phone(phone)
    if existing is not None:
        same = fleet.stored_session(existing) == candidate.session
        reason = "already imported" if same else "already imported with another session (left as it is)"
        return Outcome(candidate.label, phone, reason), "skipped"
    account_id = await fleet.add(
        phone=phone, session=candidate.session, probe=candidate.probe, proxy=candidate.proxy
    )
    if account_id is None:  # imported by someone else between the two statements
        return Outcome(candidate.label, phone, "already imported"), "skipped"
    return Outcome(candidate.label, phone, f"account {account_id}"), "imported"


# -- reading the formats ------------------------------------------------------------------------------------


def _from_csv(path: Path) -> Iterator[Candidate]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            if not reader.fieldnames or "phone" not in reader.fieldnames:
                raise ImportFileError(f"{path}: the CSV header must name at least phone and session")
            for number, row in enumerate(reader, start=2):
                yield _from_fields(f"line {number}", row)
    except (UnicodeDecodeError, csv.Error) as error:
        raise ImportFileError(f"{path}: not a readable CSV file ({type(error).__name__})") from None


def _from_json(path: Path) -> Iterator[Candidate]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ImportFileError(f"{path}: not valid JSON (line {getattr(error, 'lineno', '?')})") from None
    if isinstance(data, dict):
        data = data.get("accounts")
    if not isinstance(data, list):
        raise ImportFileError(f'{path}: expected a list of accounts, or {{"accounts": [...]}}')
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            yield Candidate(f"item {number}", problem="not an object")
            continue
        yield _from_fields(f"item {number}", item)


def _from_fields(label: str, fields: dict[str, Any]) -> Candidate:
    phone = normalize_phone(fields.get("phone"))
    if phone is None:
        return Candidate(label, problem="missing or invalid phone (7 to 15 digits, optionally after +)")
    session = str(fields.get("session") or fields.get("string_session") or "").strip()
    if not session:
        return Candidate(label, phone, problem="missing session")
    if not is_string_session(session):
        return Candidate(label, phone, problem="session is not a Telethon StringSession")
    role = str(fields.get("role") or "action").strip().lower()
    if role not in ("action", "probe"):
        return Candidate(label, phone, problem=f"role must be action or probe, not {role[:20]!r}")
    try:
        proxy = _proxy(fields)
    except ValueError as error:
        return Candidate(label, phone, problem=str(error))
    return Candidate(label, phone, session, probe=role == "probe", proxy=proxy)


def _proxy(fields: dict[str, Any]) -> Proxy | None:
    kind = str(fields.get("proxy_type") or "").strip().lower()
    if not kind:
        return None
    if kind not in PROXY_TYPES:
        raise ValueError(f"proxy_type must be one of {', '.join(PROXY_TYPES)}")
    host = str(fields.get("proxy_host") or "").strip()
    try:
        port = int(fields.get("proxy_port") or 0)
    except (TypeError, ValueError):
        port = 0
    if not host or not 0 < port < 65536:
        raise ValueError("a proxy needs proxy_host and a proxy_port between 1 and 65535")
    return Proxy(
        kind,
        host,
        port,
        str(fields.get("proxy_username") or "").strip() or None,
        str(fields.get("proxy_password") or "") or None,
    )


def _from_session_file(path: Path) -> Candidate:
    label = path.name
    phone = normalize_phone(path.stem)
    if phone is None:
        return Candidate(label, problem="the file name must be the phone number, e.g. +15551234567.session")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            row = connection.execute("SELECT dc_id, server_address, port, auth_key FROM sessions").fetchone()
    except sqlite3.Error:
        return Candidate(label, phone, problem="not a Telethon .session (SQLite) file")
    if row is None or not row[3]:
        return Candidate(label, phone, problem="the session file holds no authorization")
    return Candidate(label, phone, string_session_from(*row))


def string_session_from(dc_id: int, server_address: str, port: int, auth_key: bytes) -> str:
    from telethon.crypto import AuthKey
    from telethon.sessions import StringSession

    session = StringSession()
    session.set_dc(dc_id, server_address, port)
    session.auth_key = AuthKey(auth_key)
    return session.save()


def is_string_session(text: str) -> bool:
    from telethon.sessions import StringSession

    try:
        session = StringSession(text)
    except Exception:  # noqa: BLE001 -- any parse failure means "not a session"; its text may quote the input
        return False
    return session.auth_key is not None


def normalize_phone(value: Any) -> str | None:
    if value is None:
        return None
    text = PHONE_NOISE.sub("", str(value))
    if not PHONE.match(text):
        return None
    return text if text.startswith("+") else f"+{text}"
