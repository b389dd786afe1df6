"""`tgops dev` as a newcomer runs it: embedded services, /health all up, Ctrl-C stops cleanly; one per
folder; a taken port named before anything starts; every command finds the running one."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tgops.local.services import free_port

TGOPS = Path(sys.executable).parent / "tgops"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("TGOPS_", "AWS_"))}
    env.update(extra)
    return env


def _get_health(port: int) -> tuple[int, dict] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return None


def _wait_for_health(process: subprocess.Popen, port: int, timeout_sec: float) -> tuple[int, dict]:
    deadline = time.monotonic() + timeout_sec
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        answer = _get_health(port)
        if answer is not None:
            return answer
        time.sleep(0.2)
    raise AssertionError("tgops dev did not answer /health in time")


def _start_dev(tmp_path: Path, port: int, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(TGOPS), "dev"],
        cwd=tmp_path,
        env=_clean_env(TGOPS_API_PORT=str(port), **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _interrupt(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def test_dev_brings_up_every_dependency_and_stops_cleanly(tmp_path):
    port = free_port()
    process = _start_dev(tmp_path, port)
    try:
        status, body = _wait_for_health(process, port, timeout_sec=60)
        assert status == 200, body
        assert body["status"] == "ok"
        assert {name: item["status"] for name, item in body["dependencies"].items()} == {
            "postgres": "up",
            "redis": "up",
            "sqs": "up",
        }
    finally:
        code = _interrupt(process)
    log = process.stderr.read().decode()
    assert code == 0, log
    assert (tmp_path / ".tgops" / "postgres" / "pgdata" / "PG_VERSION").exists()
    assert not (tmp_path / ".tgops" / "postgres" / "pgdata" / "postmaster.pid").exists(), (
        "Postgres left running"
    )
    tokens_file = tmp_path / ".tgops" / "dev-tokens.json"
    tokens = json.loads(tokens_file.read_text())
    assert set(tokens) == {"TGOPS_PROVIDER_TOKEN", "TGOPS_ADMIN_TOKEN", "TGOPS_TELEGRAM_WEBHOOK_SECRET"}
    assert tokens_file.stat().st_mode & 0o777 == 0o600
    assert "`tgops dev tokens` prints them" in log and str(tokens_file) in log  # where, never what
    assert not [value for value in tokens.values() if value in log]
    assert not (tmp_path / ".tgops" / "dev.json").exists()  # removed on the way out
    summary = log[log.index("tgops is up") :]
    assert summary.startswith(f"tgops is up: http://127.0.0.1:{port} (/docs, /health)")
    # The summary's rows are the indented lines (log lines start with their time).
    rows = dict(line.split(maxsplit=1) for line in summary.splitlines() if line.startswith("  "))
    assert rows["postgres"].startswith("embedded at postgresql://")
    assert rows["telegram"].startswith("MTProto simulated")
    assert rows["tokens"] == f"local ones: `tgops dev tokens` prints them (kept in {tokens_file})"
    # Every queue of the topology has its consumer, so no "not consumed" row.
    assert (
        rows["consumed"]
        == "dm_queue, tgms_queue, group_message_queue, tg-inspect, tg-setup-fast, tg-setup-media"
    )
    assert rows["schedules"].startswith("poll_orders every 60s, generate_tasks every 60s")
    assert "not consumed" not in summary

    # The next run reuses the same data directory and the same tokens.
    process = _start_dev(tmp_path, port)
    try:
        status, _ = _wait_for_health(process, port, timeout_sec=60)
        assert status == 200
    finally:
        assert _interrupt(process) == 0
    assert json.loads(tokens_file.read_text()) == tokens


def test_dev_names_the_bad_setting_in_one_line(tmp_path):
    result = subprocess.run(
        [str(TGOPS), "dev"],
        cwd=tmp_path,
        env=_clean_env(TGOPS_PROXY_MODE="sideways"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "TGOPS_PROXY_MODE" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_dev_names_an_unreachable_database(tmp_path):
    result = subprocess.run(
        [str(TGOPS), "dev"],
        cwd=tmp_path,
        env=_clean_env(
            TGOPS_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/postgres?connect_timeout=2"
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "TGOPS_DATABASE_URL" in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def _tgops(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TGOPS), *args], cwd=cwd, env=_clean_env(**env), capture_output=True, text=True, timeout=120
    )


def _error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def running_dev(tmp_path_factory) -> Iterator[tuple[Path, int, subprocess.Popen]]:
    """One `tgops dev` for the tests that run beside it; nothing is exported to them."""
    folder = tmp_path_factory.mktemp("beside")
    port = free_port()
    process = _start_dev(folder, port)
    try:
        deadline = time.monotonic() + 90
        while (
            _wait_for_health(process, port, timeout_sec=90)[0] != 200
        ):  # a loaded machine may answer 503 first
            assert time.monotonic() < deadline, "tgops dev never answered /health with 200"
            time.sleep(0.5)
        yield folder, port, process
    finally:
        assert _interrupt(process) == 0


def test_a_second_dev_in_the_same_folder_refuses_at_once_and_the_first_keeps_serving(running_dev):
    folder, port, first = running_dev

    second = _tgops(folder, "dev", TGOPS_API_PORT=str(free_port()))

    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == _error_lines(second), second.stderr  # one line, nothing else
    [line] = _error_lines(second)
    assert "already runs" in line and f"pid {first.pid}" in line and f"http://127.0.0.1:{port}" in line
    assert first.poll() is None
    assert _get_health(port)[0] == 200
    assert (folder / ".tgops" / "dev.json").exists()  # the second one removed nothing of the first


def test_commands_beside_tgops_dev_find_it_with_nothing_exported(running_dev):
    folder, _, _ = running_dev

    created = _tgops(folder, "apikey", "create", "beside-dev")
    listed = _tgops(folder, "apikey", "list", COLUMNS="200")
    stats = _tgops(folder, "tasks", "stats")

    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("tgk_")
    assert listed.returncode == 0 and "beside-dev" in listed.stdout and key[:8] in listed.stdout, (
        listed.stderr
    )
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["queued"] == 0


def test_outside_tgops_dev_a_command_names_the_missing_setting_in_one_line(tmp_path):
    result = _tgops(tmp_path, "apikey", "list")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: TGOPS_DATABASE_URL: not set, and no `tgops dev` runs from this folder to supply it"
    ]


def test_the_state_of_a_dev_that_no_longer_runs_is_ignored(tmp_path):
    """A `tgops dev` killed with -9 leaves dev.json behind; without its lock held, nothing reads it."""
    data_dir = tmp_path / ".tgops"
    data_dir.mkdir()
    (data_dir / "dev.json").write_text(
        json.dumps({"TGOPS_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"})
    )
    (data_dir / "dev.lock").write_text(json.dumps({"pid": 999999, "url": "http://127.0.0.1:1"}))

    result = _tgops(tmp_path, "apikey", "list")

    assert result.returncode == 2 and "TGOPS_DATABASE_URL: not set" in result.stderr, result.stderr


@pytest.mark.parametrize("how", ["setting", "option"])
def test_a_taken_api_port_is_named_before_anything_starts(tmp_path, how):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if how == "setting":
            result = _tgops(tmp_path, "dev", TGOPS_API_PORT=str(port))
        else:
            result = _tgops(tmp_path, "dev", "--port", str(port))

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == _error_lines(result), result.stderr
    [line] = _error_lines(result)
    assert f"TGOPS_API_PORT: 127.0.0.1:{port} is not free" in line and "--port" in line
    assert not (tmp_path / ".tgops" / "postgres").exists()  # nothing was started


def test_dev_help_lists_its_options(tmp_path):
    result = _tgops(tmp_path, "dev", "--help", COLUMNS="200")

    assert result.returncode == 0
    assert "--port" in result.stdout and "TGOPS_API_PORT" in result.stdout


def _post(url: str, body: dict, headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _get(url: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_dev_tokens_prints_the_local_tokens_and_the_running_api_takes_them(running_dev):
    folder, port, _ = running_dev

    result = _tgops(folder, "dev", "tokens")

    assert result.returncode == 0, result.stderr
    tokens = dict(line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines())
    assert tokens == json.loads((folder / ".tgops" / "dev-tokens.json").read_text())
    assert "X-Provider-Token" in result.stderr and "Authorization: Bearer" in result.stderr
    api = f"http://127.0.0.1:{port}"
    pull = f"{api}/api/provider/telegram/tasks/pull"
    assert _post(pull, {"limit": 1}, {"X-Provider-Token": tokens["TGOPS_PROVIDER_TOKEN"]}) == 200
    assert _post(pull, {"limit": 1}, {"X-Provider-Token": "change-me"}) == 401
    admin = f"{api}/admin/dlq/tg-inspect"
    assert _get(admin, {"Authorization": f"Bearer {tokens['TGOPS_ADMIN_TOKEN']}"}) == 200
    assert _get(admin, {"Authorization": "Bearer change-me"}) == 401
    update = {"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"}}}
    webhook = f"{api}/api/webhooks/telegram"
    secret = tokens["TGOPS_TELEGRAM_WEBHOOK_SECRET"]
    assert _post(webhook, update, {"X-Telegram-Bot-Api-Secret-Token": secret}) == 200
    assert _post(webhook, update, {"X-Telegram-Bot-Api-Secret-Token": "change-me"}) == 401


def test_dev_tokens_before_any_run_says_so_in_one_line(tmp_path):
    result = _tgops(tmp_path, "dev", "tokens")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: no local tokens in {tmp_path / '.tgops'} yet: `tgops dev` generates them on its first start"
    ]


def test_an_sqs_endpoint_where_nothing_answers_is_named_not_the_credentials(tmp_path):
    endpoint = f"http://127.0.0.1:{free_port()}"

    result = _tgops(tmp_path, "dev", TGOPS_SQS_ENDPOINT_URL=endpoint, TGOPS_API_PORT=str(free_port()))

    assert result.returncode == 2
    [line] = _error_lines(result)
    assert line.startswith(f"error: TGOPS_SQS_ENDPOINT_URL: nothing answers at {endpoint}"), result.stderr
    assert "credentials" not in result.stderr.lower()
    assert "Traceback" not in result.stderr
