"""What the HTTP API, MQTT intake and CLI-facing endpoints need from the running daemon.

The daemon (``daemon/service.py``) builds one ``DaemonContext``; the HTTP app reads the current
config through it (it changes on reload) and never reaches around it into the daemon's parts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..adapters.base import ChannelAdapter
from ..core.config import Config
from ..engine.engine import Engine
from .intake import Intake


class DaemonContext(Protocol):
    """The running daemon, as its front doors see it."""

    @property
    def config(self) -> Config:
        """The config in force (replaced atomically on reload)."""
        ...

    @property
    def engine(self) -> Engine:
        """The inventory engine (reads: stock, orders)."""
        ...

    @property
    def intake(self) -> Intake:
        """The durable intake stream (``append`` before answering 202)."""
        ...

    @property
    def adapters(self) -> Mapping[str, ChannelAdapter]:
        """Channel id -> adapter of every running channel (webhook parsing)."""
        ...

    def channel_unavailable(self, channel: str) -> str | None:
        """Why a configured (optional) channel does not run, e.g. its credential variable is
        unset; None when it runs or is unknown. Its webhooks answer 503 with this."""
        ...

    async def readiness(self) -> dict[str, Any]:
        """``{"ready": bool, "checks": {name: {"ok": bool, ...}}}`` for ``GET /readyz``."""
        ...

    async def stock_view(self, sku: str) -> dict[str, Any] | None:
        """The spec's ``GET /v1/stock/{sku}`` body (with what each channel was last sent)."""
        ...

    async def order_view(self, channel: str, order_id: str) -> dict[str, Any] | None:
        """``GET /v1/orders/{channel}/{order_id}``: lines, locations, reservation outcome."""
        ...

    async def wait_processed(self, event_ids: list[str], timeout: float) -> dict[str, Any]:
        """Wait (bounded) until the events were processed; event id -> outcome summary
        (``{"outcome": "applied"|"duplicate"|"refused"|"pending", ...}``)."""
        ...
