"""`tgops dev` as a newcomer runs it: embedded services, /health all up, Ctrl-C stops cleanly."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

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
    assert code == 0, process.stderr.read().decode()
    assert (tmp_path / ".tgops" / "postgres" / "pgdata" / "PG_VERSION").exists()
    assert not (tmp_path / ".tgops" / "postgres" / "pgdata" / "postmaster.pid").exists(), (
        "Postgres left running"
    )

    # The next run reuses the same data directory.
    process = _start_dev(tmp_path, port)
    try:
        status, _ = _wait_for_health(process, port, timeout_sec=60)
        assert status == 200
    finally:
        assert _interrupt(process) == 0


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
