"""No Lambda handler imports Telethon or a Fargate worker module, directly or through the package.

Each functions/*/app.py is imported in a fresh interpreter where those modules cannot be imported,
the way the Lambda runtime would import it (its folder on sys.path, nothing from this repository's
root), with only TGOPS_ENV=development set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = sorted((ROOT / "functions").glob("*/app.py"))
FORBIDDEN = ("telethon", "tgops.workers")
CLEARED_ENV_PREFIXES = ("TGOPS_", "AWS_", "PYTHON")

IMPORT_WITH_FORBIDDEN_MODULES_BLOCKED = f"""
import importlib.abc, importlib.util, sys

FORBIDDEN = {FORBIDDEN!r}

def forbidden(name):
    return any(name == root or name.startswith(root + ".") for root in FORBIDDEN)

class Forbid(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if forbidden(name):
            raise ImportError(f"a Lambda handler must not import {{name}}")
        return None

sys.meta_path.insert(0, Forbid())
handler_path = sys.argv[1]
sys.path.insert(0, handler_path.rsplit("/", 1)[0])
spec = importlib.util.spec_from_file_location("app", handler_path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
assert callable(module.handler), "app.handler is not callable"
leaked = sorted(name for name in sys.modules if forbidden(name))
assert not leaked, f"imported {{leaked}}"
"""


def import_in_fresh_interpreter(handler: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    inherited = {key: value for key, value in os.environ.items() if not key.startswith(CLEARED_ENV_PREFIXES)}
    env = inherited | {"TGOPS_ENV": "development", "AWS_DEFAULT_REGION": "us-east-1"}
    return subprocess.run(
        [sys.executable, "-c", IMPORT_WITH_FORBIDDEN_MODULES_BLOCKED, str(handler)],
        cwd=cwd,  # not the repository root: no .env file, no stray top-level imports
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_there_are_handlers_to_check():
    assert ROOT / "functions" / "http_api" / "app.py" in HANDLERS


@pytest.mark.parametrize("handler", HANDLERS, ids=[path.parent.name for path in HANDLERS])
def test_handler_imports_without_telethon_or_workers(handler, tmp_path):
    result = import_in_fresh_interpreter(handler, tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("module", ["telethon", "telethon.sessions", "tgops.workers"])
def test_a_handler_importing_a_forbidden_module_fails(module, tmp_path):
    handler = tmp_path / "bad_function" / "app.py"
    handler.parent.mkdir()
    handler.write_text(f"import {module}\n\ndef handler(event, context):\n    return None\n")
    result = import_in_fresh_interpreter(handler, tmp_path)
    assert result.returncode != 0
    assert "a Lambda handler must not import" in result.stderr
