"""cfn-lint and `sam validate` accept template.yaml, offline.

Both run with dummy credentials and every HTTP(S) request sent to a closed local port, so a check
that needed AWS would fail here instead of passing on a machine that happens to be online.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLOSED_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused


def offline_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "TGOPS_"))}
    return env | {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "SAM_CLI_TELEMETRY": "0",
        "HTTP_PROXY": CLOSED_PROXY,
        "HTTPS_PROXY": CLOSED_PROXY,
        "NO_PROXY": "",
    }


def run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=offline_env(), capture_output=True, text=True, timeout=300, check=False
    )


def test_cfn_lint_accepts_the_template():
    result = run(str(BIN / "cfn-lint"), "template.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("options", [("--lint",), ()], ids=["lint", "translate"])
def test_sam_validate_accepts_the_template(options):
    result = run(str(BIN / "sam"), "validate", "--template-file", "template.yaml", *options)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_cfn_lint_rejects_a_broken_template(tmp_path):
    template = (ROOT / "template.yaml").read_text()
    (tmp_path / "template.yaml").write_text(template.replace("Handler: app.handler", "Bogus: 1", 1))
    result = run(str(BIN / "cfn-lint"), "template.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "Bogus" in result.stdout
