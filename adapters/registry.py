"""Which adapter speaks for a configured channel: ``make_adapter(channel, ctx)``, and which
Struct its ``options`` table decodes into: ``options_type(kind)``.

Each kind's module or package (``adapters/<kind>.py``, ``adapters/<kind>/``) exposes
``create(channel, ctx)`` and ``Options``; it is imported on first use, so a deployment without
MQTT or EDI channels never loads their code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import cast

import msgspec

from ..core.config import Channel
from .base import AdapterContext, ChannelAdapter

__all__ = [
    "ADAPTER_MODULES",
    "MissingSecret",
    "make_adapter",
    "module_for",
    "options_type",
]

#: Channel kind -> the module under ``adapters/`` that speaks it.
ADAPTER_MODULES: dict[str, str] = {
    "webhook": "webhook",
    "shopify": "shopify",
    "amazon": "amazon",
    "ebay": "ebay",
    "walmart": "walmart",
    "tiktok": "tiktok",
    "edi846": "edi846",
    "mqtt": "mqtt_availability",
    "pos": "mqtt_availability",
}


class MissingSecret(ValueError):
    """A channel's secret is referenced by an environment variable that is unset or empty."""

    def __init__(self, channel: str, key: str, env: str | None) -> None:
        self.channel = channel
        self.key = key
        self.env = env
        what = f"environment variable {env} is not set (or empty)" if env else "not configured"
        super().__init__(f"channel '{channel}': {key}: {what}")


def module_for(kind: str, modules: Mapping[str, str], package: str) -> ModuleType | None:
    """The module of ``package`` that ``modules`` names for ``kind``, imported on first use;
    None when the kind has none (an import error inside that module still propagates)."""
    name = modules.get(kind)
    if name is None:
        return None
    try:
        return importlib.import_module(f".{name}", package)
    except ModuleNotFoundError as exc:
        if exc.name != f"{package}.{name}":
            raise
        return None


def options_type(kind: str) -> type[msgspec.Struct] | None:
    """The Struct a ``kind`` channel's ``options`` table decodes into: its module's ``Options``;
    None when the kind has no adapter (its options are not checked)."""
    module = module_for(kind, ADAPTER_MODULES, __package__ or "invsync.adapters")
    if module is None:
        return None
    return cast("type[msgspec.Struct] | None", getattr(module, "Options", None))


def make_adapter(channel: Channel, ctx: AdapterContext) -> ChannelAdapter | None:
    """The adapter for ``channel``; None for kinds without one.

    Raises ValueError (MissingSecret names the variable) when the channel's config cannot work.
    """
    module = module_for(channel.kind, ADAPTER_MODULES, __package__ or "invsync.adapters")
    if module is None:
        return None
    create = cast(Callable[[Channel, AdapterContext], ChannelAdapter], module.create)
    return create(channel, ctx)
