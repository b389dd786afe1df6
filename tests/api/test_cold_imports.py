"""A webhook's cold start imports only what a webhook needs (bench/cold_start.py times it).

functions/http_api/app.py is imported in a fresh interpreter, as the Lambda runtime would (its folder on
sys.path, only TGOPS_ENV=development set), from this tree's package; the modules it loaded are listed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tgops

ROOT = Path(__file__).resolve().parents[2]
HANDLER = ROOT / "functions" / "http_api" / "app.py"
PACKAGE_PARENT = Path(tgops.__file__).resolve().parents[1]

# Loaded on the first request that needs them, never at init.
NOT_AT_INIT = (
    "tgops.api.routers.health",  # the lazily included routers (tgops.api.app) ...
    "tgops.api.routers.admin_dlq",
    "tgops.api.routers.public",
    "tgops.api.routers.live_streams",
    "tgops.api.routers.provider",
    "tgops.api.routers.broadcasts",
    "tgops.api.auth",  # ... and what only they use
    "tgops.api.api_keys",
    "tgops.broadcast",
    "tgops.provider",
    "tgops.groups",
    "tgops.dm",
    "tgops.messaging.dlq",
    "tgops.api.dashboard.router",  # the dashboard (LazyDashboard) and its templates
    "jinja2",
    "telegram",  # python-telegram-bot and Telethon: worker-side
    "telethon",
    "tgops.workers",
    "psycopg",  # drivers: imported when their client is built (tgops.runtime)
    "redis",
    "upstash_redis",
)
# What every webhook uses, loaded at init: its route and its SQS sender.
AT_INIT = ("tgops.api.routers.webhooks", "tgops.ingress.webhook", "boto3")

LIST_LOADED_MODULES = """
import importlib.util, json, sys
handler_path = sys.argv[1]
sys.path.insert(0, handler_path.rsplit("/", 1)[0])
spec = importlib.util.spec_from_file_location("app", handler_path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
assert callable(module.handler), "app.handler is not callable"
print(json.dumps(sorted(sys.modules)))
"""


def modules_loaded_by(handler: Path, cwd: Path) -> set[str]:
    inherited = {
        name: value for name, value in os.environ.items() if not name.startswith(("TGOPS_", "PYTHON"))
    }
    env = inherited | {"TGOPS_ENV": "development", "AWS_DEFAULT_REGION": "us-east-1"}
    env["PYTHONPATH"] = str(PACKAGE_PARENT)  # this tree's tgops, not whichever the venv installed
    result = subprocess.run(
        [sys.executable, "-c", LIST_LOADED_MODULES, str(handler)],
        cwd=cwd,  # no .env file
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def among(modules: set[str], roots: tuple[str, ...]) -> list[str]:
    return sorted(
        root for root in roots if any(name == root or name.startswith(root + ".") for name in modules)
    )


@pytest.fixture(scope="module")
def loaded_at_init(tmp_path_factory) -> set[str]:
    return modules_loaded_by(HANDLER, tmp_path_factory.mktemp("cold"))


def test_the_handler_loads_none_of_what_a_webhook_does_not_need(loaded_at_init):
    assert among(loaded_at_init, NOT_AT_INIT) == []


def test_the_handler_loads_what_every_webhook_needs(loaded_at_init):
    assert among(loaded_at_init, AT_INIT) == sorted(AT_INIT)


@pytest.mark.parametrize(
    "eager_import",
    [
        "import tgops.api.routers.broadcasts",
        "from tgops.api.dashboard.router import dashboard_app",
        "import tgops.api.app\nfrom tgops.api.routers import provider",
    ],
)
def test_an_eager_import_of_a_lazy_module_is_caught(eager_import, tmp_path):
    handler = tmp_path / "eager_function" / "app.py"
    handler.parent.mkdir()
    handler.write_text(f"{eager_import}\n\ndef handler(event, context):\n    return None\n")

    assert among(modules_loaded_by(handler, tmp_path), NOT_AT_INIT) != []
