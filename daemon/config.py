"""The daemon's config loader: the core schema plus every channel's typed options.

`core.config` owns the schema and cannot know the adapters (it is the bottom layer); each
adapter declares its own ``Options`` Struct. This loader joins the two, so `check-config`, the
start-up and a reload refuse a bad channel option with its key's path before anything runs.
It also checks what an option names against the rest of the file (a webhook channel's
``stock_locations`` must be ``[[locations]]`` ids).
"""

from __future__ import annotations

from pathlib import Path

from ..adapters.registry import options_type
from ..adapters.webhook import Options as WebhookOptions
from ..core import config as schema
from ..core.config import Config, ConfigError, decode_options

__all__ = ["load_config"]


def load_config(path: Path | str | None = None) -> Config:
    """`core.config.load_config` with each channel's ``options`` checked against its kind's
    ``Options`` (ConfigError names ``channels[N].options.KEY``)."""
    config = schema.load_config(path, channel_options=options_type)
    try:
        _check_option_refs(config)
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.message, source=str(path or config.source)) from None
    return config


def _check_option_refs(config: Config) -> None:
    """Options that name other parts of the config name ones that exist."""
    locations = [loc.id for loc in config.locations]
    for i, channel in enumerate(config.channels):
        if channel.kind != "webhook":
            continue
        key = f"channels[{i}].options"
        options = decode_options(channel.options, WebhookOptions, key=key)
        for j, location in enumerate(options.stock_locations):
            if location not in locations:
                raise ConfigError(
                    f"{key}.stock_locations[{j}]",
                    f"unknown location '{location}' (known: {', '.join(locations)})",
                )
