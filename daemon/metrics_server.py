"""``[metrics] port``: Prometheus' ``GET /metrics`` on a listener of its own.

Scrapers often live on another network than API clients: with ``port`` set, the exposition is
also served on ``server.host:metrics.port`` by a second ``HttpServer`` that answers nothing else
(a 404 for every other path), so a firewall can open that port to the scraper alone.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..metrics.definitions import REGISTRY

__all__ = ["metrics_app"]


async def _metrics(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


async def _not_found(request: Request, exc: Exception) -> Response:
    message = f"no such endpoint: {request.method} {request.url.path} (this port serves /metrics)"
    return JSONResponse({"error": {"code": "NOT_FOUND", "message": message}}, status_code=404)


def metrics_app() -> Starlette:
    """The app of the metrics listener: ``GET /metrics`` only."""
    return Starlette(
        routes=[Route("/metrics", _metrics, methods=["GET"])],
        exception_handlers={404: _not_found, 405: _not_found},
    )
