"""The exception queue over HTTP: ``GET /v1/exceptions``, ``GET /v1/exceptions/{id}`` and
``POST /v1/exceptions/{id}/resolve`` (docs/api.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...core.errors import InvalidRequest
from ..http import JsonResponse, _guarded
from .queue import ExceptionQueue
from .records import ResolveRequest

__all__ = ["exception_routes"]


def exception_routes(queue: Callable[[], ExceptionQueue]) -> list[Route]:
    """``GET /v1/exceptions``, ``GET /v1/exceptions/{id}``, ``POST .../{id}/resolve``, for
    ``build_app(ctx, routes=...)`` (behind its bearer check and JSON error mapping)."""

    async def list_exceptions(request: Request) -> Response:
        params = request.query_params
        state: str | None = params.get("state", "open")
        if state == "all":
            state = None
        try:
            limit = int(params.get("limit", "100"))
            before = int(params["before"]) if "before" in params else None
        except ValueError as exc:
            raise InvalidRequest("limit and before must be integers") from exc
        records = await queue().query(
            state=state,
            kind=params.get("kind"),
            channel=params.get("channel"),
            limit=limit,
            before_ms=before,
        )
        body: dict[str, Any] = {"items": msgspec.to_builtins(records)}
        if len(records) == limit:
            body["next_before"] = records[-1].created_ms
        return JsonResponse(body)

    async def get_exception(request: Request) -> Response:
        return JsonResponse(msgspec.to_builtins(await queue().get(request.path_params["id"])))

    async def resolve_exception(request: Request) -> Response:
        body = await request.body()
        try:
            ask = msgspec.json.decode(body or b"{}", type=ResolveRequest)
        except msgspec.ValidationError as exc:
            raise InvalidRequest(f"bad resolve request: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise InvalidRequest(f"malformed JSON: {exc}") from exc
        record = await queue().resolve(
            request.path_params["id"], ask.action, by=ask.by, sku=ask.sku, note=ask.note
        )
        return JsonResponse(msgspec.to_builtins(record))

    return [
        Route("/v1/exceptions", _guarded(list_exceptions), methods=["GET"]),
        Route("/v1/exceptions/{id}", _guarded(get_exception), methods=["GET"]),
        Route("/v1/exceptions/{id}/resolve", _guarded(resolve_exception), methods=["POST"]),
    ]
