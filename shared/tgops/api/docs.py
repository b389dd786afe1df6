"""`/docs`: Swagger UI served by the app itself, so it works offline (no CDN).

The assets in api/static/ are swagger-ui-dist 5.31.0's (Apache-2.0, licence beside them), taken from the
swagger-ui-bundle-v2 wheel: the swagger-ui-bundle package still ships 4.x, which cannot read the OpenAPI
3.1 document FastAPI writes. ReDoc, which only FastAPI's CDN default would serve, is off.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
ASSET_CACHE = "public, max-age=86400"

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    from fastapi.openapi.docs import get_swagger_ui_html  # only when someone opens /docs

    assets = f"{request.scope.get('root_path', '')}/docs/assets"
    return get_swagger_ui_html(
        openapi_url=f"{request.scope.get('root_path', '')}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
    )


@router.get("/docs/assets/{name}")
async def swagger_ui_asset(name: str) -> Response:
    if name not in ASSETS:
        raise HTTPException(404, f"no asset {name!r}")
    return Response(_asset(name), media_type=ASSETS[name], headers={"Cache-Control": ASSET_CACHE})


@cache
def _asset(name: str) -> bytes:
    return resources.files("tgops.api").joinpath("static", name).read_bytes()
