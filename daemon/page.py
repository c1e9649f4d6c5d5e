"""The live console (``GET /``): static files shipped in the package, served as they are.

No build step and no CDN: ``daemon/static/`` holds the page, its script and its style sheet, read
through importlib.resources so an installed wheel serves the same bytes as a checkout. The files
are read once, when ``page_routes()`` is called (a missing file is a start-up error, not a 404 at
run time), and only the names in ``STATIC`` are served, so no request path reaches outside the
folder. The page talks to ``WS /v1/feed``, ``GET /metrics``, ``GET /v1/stock/{sku}``,
``GET /v1/channels`` (and ``.../latency``), ``GET /v1/orders/...`` and ``/v1/exceptions`` (listing
and ``POST .../resolve``) itself, with the session cookie its sign-in link set
(``daemon/security.py``: the page's files hold no data and need no credential; what they fetch
does). Its script is split into ES modules (``app.js`` imports the others), loaded as they are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

__all__ = ["STATIC", "Asset", "load_assets", "page_routes"]

#: File name in ``static/`` -> its Content-Type; nothing else is served.
STATIC: Mapping[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "detail.js": "text/javascript; charset=utf-8",
    "events.js": "text/javascript; charset=utf-8",
    "health.js": "text/javascript; charset=utf-8",
    "incidents.js": "text/javascript; charset=utf-8",
    "util.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

# Same-origin everything: the page needs no third party, and 'self' covers ws(s):// to the same
# host in CSP 3 browsers. The favicon is an inline data: URL (no request that would 404).
_CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Cache-Control": "no-cache",  # revalidate (cheap: ETag) so an upgrade shows at once
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": _CSP,
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One static file: its bytes, Content-Type and strong ETag."""

    body: bytes
    media_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Every file of ``STATIC`` read from the package; FileNotFoundError names a missing one."""
    folder = resources.files(__package__).joinpath("static")
    assets = {}
    for name, media_type in STATIC.items():
        body = folder.joinpath(name).read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[name] = Asset(body=body, media_type=media_type, etag=etag)
    return assets


def _answer(request: Request, asset: Asset) -> Response:
    headers = {**_HEADERS, "ETag": asset.etag}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def page_routes() -> list[BaseRoute]:
    """``GET /`` (the page) and ``GET /static/{name}`` (its files), for ``build_app(routes=)``."""
    assets = load_assets()

    async def index(request: Request) -> Response:
        return _answer(request, assets["index.html"])

    async def static(request: Request) -> Response:
        asset = assets.get(request.path_params["name"])
        if asset is None:
            raise HTTPException(status_code=404)  # the app answers it as the spec's JSON error
        return _answer(request, asset)

    return [
        Route("/", index, methods=["GET"]),
        Route("/static/{name}", static, methods=["GET"]),
    ]
