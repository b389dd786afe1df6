"""/docs works offline: the page and every asset it references come from the app itself."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tgops.api.app import create_app
from tgops.config import Settings
from tgops.runtime import Runtime


async def test_docs_and_every_asset_they_reference_are_served_by_the_app():
    transport = httpx.ASGITransport(app=create_app(Runtime(Settings())))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        page = await client.get("/docs")
        references = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
        answers = {reference: await client.get(reference) for reference in references}

    assert page.status_code == 200
    assert '"validatorUrl": null' in page.text  # Swagger UI would otherwise fetch a badge online
    assert not [reference for reference in references if re.match(r"(https?:)?//", reference)]
    assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/openapi.json"} <= set(
        answers
    )
    assert {reference: answer.status_code for reference, answer in answers.items()} == dict.fromkeys(
        answers, 200
    )
    assert answers["/openapi.json"].json()["openapi"].startswith("3.1")
    assert b"SwaggerUIBundle" in answers["/docs/assets/swagger-ui-bundle.js"].content


async def test_only_the_known_assets_are_served():
    transport = httpx.ASGITransport(app=create_app(Runtime(Settings())))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/docs/assets/..%2F..%2Fconfig.py")

    assert response.status_code == 404


def test_the_readmes_pointers_resolve_inside_the_repository():
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#]+)\)", readme) + re.findall(r"`([\w./-]+\.md)`", readme)

    assert "docs/architecture.md" in targets
    assert [target for target in targets if not (root / target).resolve().is_relative_to(root)] == []
    assert [target for target in targets if not (root / target).exists()] == []
