"""The daemon's config loader: the core schema plus every channel's typed options.

`core.config` owns the schema and cannot know the adapters (it is the bottom layer); each
adapter declares its own ``Options`` Struct. This loader joins the two, so `check-config`, the
start-up and a reload refuse a bad channel option with its key's path before anything runs.
"""

from __future__ import annotations

from pathlib import Path

from ..adapters.registry import options_type
from ..core import config as schema
from ..core.config import Config

__all__ = ["load_config"]


def load_config(path: Path | str | None = None) -> Config:
    """`core.config.load_config` with each channel's ``options`` checked against its kind's
    ``Options`` (ConfigError names ``channels[N].options.KEY``)."""
    return schema.load_config(path, channel_options=options_type)
