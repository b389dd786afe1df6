"""One command-line package: every command group under tgops.cli, typer and rich nowhere else, and
nothing dev-only loaded by a command that does not need it."""

from __future__ import annotations

import ast
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tgops.cli import app
from tgops.cli.support import one_line_errors
from tgops.errors import StartupError

PACKAGE = Path(__file__).resolve().parents[2] / "shared" / "tgops"
UI_LIBRARIES = ("typer", "rich")
DEV_ONLY_MODULES = ("tgops.local.dev", "tgops.local.services", "tgops.local.loops", "uvicorn", "moto")


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_only_the_cli_and_local_packages_import_typer_or_rich():
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] not in ("cli", "local")
        and _imported_roots(path) & set(UI_LIBRARIES)
    ]
    assert offenders == []


def test_the_scan_sees_an_import_of_typer(tmp_path):
    module = tmp_path / "capability.py"
    module.write_text("from typer import Typer\n")
    assert "typer" in _imported_roots(module)


def test_every_command_group_is_one_app():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for command in ("dev", "migrate", "version", "apikey", "tasks", "panel"):
        assert f" {command} " in result.output, result.output


@pytest.mark.parametrize("module", ["tgops.cli", "tgops.cli.support"])
def test_the_commands_load_nothing_dev_only(module):
    check = (
        f"import sys, {module}; "
        f"print(sorted(name for name in sys.modules if name.split('.')[0] in ('uvicorn', 'moto') "
        f"or name in {DEV_ONLY_MODULES!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_startup_error_ends_the_command_in_one_line(capsys):
    with pytest.raises(typer.Exit) as exit_info, one_line_errors():
        raise StartupError("TGOPS_API_PORT: 127.0.0.1:8000 is in use [by another process]")
    assert exit_info.value.exit_code == 2
    assert capsys.readouterr().err == "error: TGOPS_API_PORT: 127.0.0.1:8000 is in use [by another process]\n"


def test_every_command_logs_through_the_redacting_handler():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(app, ["version"])
        assert result.exit_code == 0
        assert [
            type(handler).__name__ for handler in root.handlers if type(handler).__module__ == "tgops.logs"
        ] == ["RedactingHandler"]
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
