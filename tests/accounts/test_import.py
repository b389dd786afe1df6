"""`tgops accounts import`: CSV, JSON and Telethon .session files, broken rows, and re-imports."""

import json
import logging
import sqlite3

import pytest
from typer.testing import CliRunner

from tests.accounts.conftest import make_string_session
from tgops.accounts.importing import ImportFileError, import_accounts, read_candidates
from tgops.cli import app


async def test_a_csv_file_imports_its_good_rows_and_says_why_the_others_failed(tmp_path, fleet, db, caplog):
    good, probe = make_string_session(), make_string_session()
    (tmp_path / "fleet.csv").write_text(
        "phone,session,role,proxy_type,proxy_host,proxy_port,proxy_username,proxy_password\n"
        f"+1 555 000 0001,{good},,socks5,10.0.0.1,1080,user,proxy-secret-pw\n"
        f"15550000002,{probe},probe,,,,,\n"
        ",{good},,,,,,\n"
        "+15550000003,not-a-session,,,,,,\n"
        "+15550000004,,,,,,,\n"
        f"+15550000005,{good},admin,,,,,\n"
        f"+15550000006,{good},,socks5,,99999,,\n"
        f"+15550000001,{good},,,,,,\n"
    )
    caplog.set_level(logging.DEBUG)

    summary = await import_accounts(fleet, read_candidates(tmp_path / "fleet.csv"))

    assert [(o.label, o.phone) for o in summary.imported] == [
        ("line 2", "+15550000001"),
        ("line 3", "+15550000002"),
    ]
    assert [(o.label, o.reason) for o in summary.failed] == [
        ("line 4", "missing or invalid phone (7 to 15 digits, optionally after +)"),
        ("line 5", "session is not a Telethon StringSession"),
        ("line 6", "missing session"),
        ("line 7", "role must be action or probe, not 'admin'"),
        ("line 8", "a proxy needs proxy_host and a proxy_port between 1 and 65535"),
    ]
    assert [(o.label, o.reason) for o in summary.skipped] == [("line 9", "duplicate of line 2 in this file")]
    first = await fleet.find("+15550000001")
    assert (first["proxy_type"], first["proxy_host"], first["proxy_username"]) == (
        "socks5",
        "10.0.0.1",
        "user",
    )
    assert fleet.stored_session(first) == good
    assert (await fleet.find("+15550000002"))["is_probe"]
    stored = json.dumps(
        [dict(row) for row in await db.fetch_all("fleet_all_secrets", {"after_id": 0, "limit": 9})]
    )
    for secret in (good, probe, "proxy-secret-pw"):
        assert secret not in stored and secret not in caplog.text
        assert all(secret not in str(o) for o in summary.failed + summary.imported + summary.skipped)


async def test_importing_the_same_file_again_changes_nothing(tmp_path, fleet, db):
    other = make_string_session()
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps({"accounts": [
        {"phone": "+15550000011", "session": make_string_session()},
        {"phone": "+15550000012", "string_session": make_string_session(), "role": "probe"},
        "not an object",
    ]}))  # fmt: skip
    first = await import_accounts(fleet, read_candidates(path))
    before = await db.fetch_all("fleet_all_secrets", {"after_id": 0, "limit": 9})

    again = await import_accounts(fleet, read_candidates(path))
    path.write_text(json.dumps([{"phone": "+15550000011", "session": other}]))
    changed = await import_accounts(fleet, read_candidates(path))

    assert first.as_dict() == {"imported": 2, "skipped": 0, "failed": 1}
    assert first.failed[0].reason == "not an object"
    assert again.as_dict() == {"imported": 0, "skipped": 2, "failed": 1}
    assert {o.reason for o in again.skipped} == {"already imported"}
    assert changed.skipped[0].reason == "already imported with another session (left as it is)"
    assert await db.fetch_all("fleet_all_secrets", {"after_id": 0, "limit": 9}) == before


def write_telethon_session(path, auth_key: bytes | None, dc_id: int = 4) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE sessions (dc_id integer primary key, server_address text, port integer, "
            "auth_key blob, takeout_id integer)"
        )
        if auth_key is not None:
            connection.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, NULL)", (dc_id, "149.154.167.91", 443, auth_key)
            )


async def test_telethon_session_files_become_string_sessions(tmp_path, fleet):
    from telethon.sessions import StringSession

    key = bytes(range(256))
    write_telethon_session(tmp_path / "+15550000021.session", key)
    write_telethon_session(tmp_path / "+15550000022.session", None)
    (tmp_path / "+15550000023.session").write_bytes(b"not sqlite at all")
    write_telethon_session(tmp_path / "operator.session", key)

    summary = await import_accounts(fleet, read_candidates(tmp_path))

    assert [o.phone for o in summary.imported] == ["+15550000021"]
    assert {o.label: o.reason for o in summary.failed} == {
        "+15550000022.session": "the session file holds no authorization",
        "+15550000023.session": "not a Telethon .session (SQLite) file",
        "operator.session": "the file name must be the phone number, e.g. +15551234567.session",
    }
    session = StringSession(fleet.stored_session(await fleet.find("+15550000021")))
    assert (session.dc_id, session.server_address, session.port) == (4, "149.154.167.91", 443)
    assert session.auth_key.key == key


def test_an_unreadable_file_is_one_clear_error(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b.json").write_text("{not json")
    (tmp_path / "c.csv").write_text("name,value\n1,2\n")
    for name, message in (
        ("a.txt", "unknown format"),
        ("b.json", "not valid JSON"),
        ("c.csv", "header"),
        ("none.csv", "no such file"),
    ):
        with pytest.raises(ImportFileError, match=message):
            read_candidates(tmp_path / name)


def test_the_cli_imports_with_a_summary_and_exit_code(tmp_path, settings):
    session = make_string_session()
    path = tmp_path / "fleet.csv"
    path.write_text(f"phone,session\n+15550000031,{session}\n+1,{session}\n")
    runner = CliRunner()

    result = runner.invoke(app, ["accounts", "import", str(path)])
    again = runner.invoke(app, ["accounts", "import", str(path)])
    listed = runner.invoke(app, ["accounts", "list"])

    assert result.exit_code == 1, result.output  # a failed row
    assert "1 imported, 0 skipped, 1 failed" in result.output
    assert "0 imported, 1 skipped, 1 failed" in again.output
    assert "+15550000031" in listed.output and "action" in listed.output
    assert session not in result.output + again.output + listed.output
