"""Layering: the API layer sits on top. Only the entrypoints (the command line, `tgops dev`) import it;
capabilities, the stores and the messaging layer never do (the secret checks live in tgops.security)."""

from __future__ import annotations

import ast
from pathlib import Path

import tgops

PACKAGE = Path(tgops.__file__).parent
ALLOWED_TO_IMPORT_THE_API = ("api", "cli", "local")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_nothing_below_the_api_imports_it():
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name for name in imported_modules(path) if name == "tgops.api" or name.startswith("tgops.api.")
        )
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] not in ALLOWED_TO_IMPORT_THE_API
    }

    assert {path: names for path, names in offenders.items() if names} == {}
