"""``GET /v1/holds/{hold_id}``: a hold's state (held, released, expired, converted, or refused
with the lines that fell short), its lines with their locations, and its expiry (ISO-8601, UTC).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..core.clock import Clock
from ..core.errors import UnknownHold
from ..engine import keys
from ..engine.engine import Engine
from .holds import hold_view

__all__ = ["hold_routes"]


def hold_routes(engine: Callable[[], Engine], *, clock: Clock) -> list[Route]:
    """The hold endpoint over the running daemon's engine (``/v1``: the bearer check applies)."""
    from .http import JsonResponse, _guarded

    async def get_hold(request: Request) -> Response:
        hold_id = request.path_params["hold_id"]
        keys.check_id(hold_id, "hold_id")
        store = engine()
        hold = await store.hold(hold_id)
        if hold is not None:
            return JsonResponse(hold_view(hold, int(clock.now() * 1000)))
        refusal = await store.redis.get(keys.hold_refusal(hold_id))
        if refusal is not None:
            return JsonResponse(msgspec.json.decode(refusal))
        raise UnknownHold(f"no hold {hold_id!r}")

    return [Route("/v1/holds/{hold_id}", _guarded(get_hold), methods=["GET"])]
