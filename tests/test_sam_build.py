"""`sam build` builds every function and layer of template.yaml through a Makefile target.

A full `sam build` fetches the dependency layer's wheels from PyPI, so it runs as `make sam-build`, not
here. These tests run the targets that need no network for real, and dry-run the one that does.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.template_topology import Template, load_template

ROOT = Path(__file__).resolve().parents[1]
BUILT_RESOURCE_TYPES = ("AWS::Serverless::Function", "AWS::Serverless::LayerVersion")
PIP_ARCHITECTURES = {"arm64": "aarch64", "x86_64": "x86_64"}


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(ROOT / "template.yaml")


def built_resources(template: Template) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] in BUILT_RESOURCE_TYPES
    }


def source_dir(resource: dict[str, Any]) -> Path:
    properties = resource["Properties"]
    return ROOT / (properties.get("CodeUri") or properties["ContentUri"])


def makefile(resource: dict[str, Any]) -> Path:
    """Where `sam build` looks for the Makefile: Metadata.ContextPath, else the code folder."""
    context = resource.get("Metadata", {}).get("ContextPath")
    return (ROOT / context if context else source_dir(resource)) / "Makefile"


def run_target(
    logical_id: str, resource: dict[str, Any], artifacts: Path, *make_options: str, source: Path | None = None
) -> str:
    """Runs `make build-<LogicalId>` as `sam build` does: in (a copy of) the code folder, ARTIFACTS_DIR set."""
    artifacts.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["make", *make_options, "--makefile", str(makefile(resource)), f"build-{logical_id}"],
        cwd=source or source_dir(resource),
        env={**os.environ, "ARTIFACTS_DIR": str(artifacts)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{logical_id}: {result.stderr}"
    return result.stdout


def files_under(folder: Path) -> set[str]:
    return {
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_every_function_and_layer_has_a_makefile_target(template, tmp_path):
    resources = built_resources(template)
    assert len(resources) > 2
    for logical_id, resource in resources.items():
        assert resource.get("Metadata", {}).get("BuildMethod") == "makefile", logical_id
        assert makefile(resource).is_file(), f"{logical_id}: no {makefile(resource)}"
        run_target(logical_id, resource, tmp_path / logical_id, "--dry-run")


def test_a_function_is_only_its_app_py(template, tmp_path):
    for logical_id, resource in built_resources(template).items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        run_target(logical_id, resource, tmp_path / logical_id)
        assert files_under(tmp_path / logical_id) == {"app.py"}, logical_id
        assert (tmp_path / logical_id / "app.py").read_bytes() == (
            source_dir(resource) / "app.py"
        ).read_bytes()


def test_tgops_layer_is_the_whole_package_with_its_data_files_and_no_bytecode(template, tmp_path):
    layer = template["Resources"]["TgopsLayer"]
    source = tmp_path / "source"  # sam build's copy of the ContentUri, with a local run's bytecode in it
    shutil.copytree(source_dir(layer), source)
    (source / "tgops" / "__pycache__").mkdir(exist_ok=True)
    (source / "tgops" / "__pycache__" / "config.cpython-311.pyc").write_bytes(b"")
    artifacts = tmp_path / "artifacts"
    run_target("TgopsLayer", layer, artifacts, source=source)
    built = artifacts / "python" / "tgops"
    assert files_under(built) == files_under(source_dir(layer) / "tgops")
    assert {"db/queries", "db/migrations", "cache/lua", "api/static"} <= {
        str(Path(name).parent) for name in files_under(built)
    }
    assert not list(artifacts.rglob("__pycache__"))


def test_dependency_layer_installs_wheels_for_the_functions_runtime_and_architecture(template, tmp_path):
    functions = template["Globals"]["Function"]
    (architecture,) = functions["Architectures"]
    layer = template["Resources"]["DependenciesLayer"]
    assert layer["Metadata"]["BuildArchitecture"] == architecture
    assert layer["Properties"]["CompatibleRuntimes"] == [functions["Runtime"]]

    commands = run_target("DependenciesLayer", layer, tmp_path, "--dry-run").replace("\\\n", " ")
    pip_line = next(line for line in commands.splitlines() if " pip install " in line)
    arguments = shlex.split(pip_line)
    platforms = [arguments[index + 1] for index, word in enumerate(arguments) if word == "--platform"]
    assert platforms
    assert all(platform.endswith(f"_{PIP_ARCHITECTURES[architecture]}") for platform in platforms)
    assert arguments[arguments.index("--python-version") + 1] == functions["Runtime"].removeprefix("python")
    assert arguments[arguments.index("--implementation") + 1] == "cp"
    assert "--only-binary=:all:" in arguments
    assert arguments[arguments.index("--target") + 1] == f"{tmp_path}/python"
    assert arguments[arguments.index("-r") + 1] == "requirements.txt"
    assert (source_dir(layer) / "requirements.txt").is_file()
