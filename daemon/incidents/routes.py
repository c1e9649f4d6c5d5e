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
from ..http import MAX_SMALL_BODY, JsonResponse, _guarded, read_body
from ..security import Forbidden, principal_of
from .queue import ExceptionQueue
from .records import ResolveRequest

__all__ = ["ByMismatch", "exception_routes"]


class ByMismatch(Forbidden):
    """A resolve request whose ``by`` is not the name of the credential it came with."""

    code = "BY_MISMATCH"


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
        body = await read_body(request, MAX_SMALL_BODY)  # 413 past it, never read whole
        try:
            ask = msgspec.json.decode(body or b"{}", type=ResolveRequest)
        except msgspec.ValidationError as exc:
            raise InvalidRequest(f"bad resolve request: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise InvalidRequest(f"malformed JSON: {exc}") from exc
        except RecursionError:
            raise InvalidRequest("malformed JSON: nested too deeply") from None
        # Who acted is who holds the credential: a name in the body could be anyone's.
        by = principal_of(request)
        if ask.by is not None and ask.by != by:
            raise ByMismatch(
                f"by is taken from your credential ({by!r}), not the body ({ask.by!r}): leave "
                "it out, or use the token issued to that name ([server] tokens)",
                field="by",
            )
        record = await queue().resolve(
            request.path_params["id"], ask.action, by=by, sku=ask.sku, note=ask.note
        )
        return JsonResponse(msgspec.to_builtins(record))

    return [
        Route("/v1/exceptions", _guarded(list_exceptions), methods=["GET"]),
        Route("/v1/exceptions/{id}", _guarded(get_exception), methods=["GET"]),
        Route("/v1/exceptions/{id}/resolve", _guarded(resolve_exception), methods=["POST"]),
    ]
