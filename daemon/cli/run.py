"""``invsync run`` (the daemon in the foreground) and ``invsync check-config``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ...core.errors import InvsyncError
from .. import logs
from ..loop import run_loop
from ..service import serve
from .common import config_option, fail, load, log_level_option


@click.command()
@config_option
@log_level_option
def run(config_path: Path | None, log_level: str) -> None:
    """Run the daemon until SIGTERM/SIGINT."""
    config = load(config_path)
    logs.configure(level=log_level)
    try:
        code = run_loop(serve(config))
    except InvsyncError as exc:
        fail(exc)
    sys.exit(code)


@click.command("check-config")
@config_option
def check_config(config_path: Path | None) -> None:
    """Validate a config file; exit 2 naming the key on error."""
    config = load(config_path)
    store = config.redis.url or f"embedded Valkey in {config.redis.data_dir}"
    click.echo(
        f"{config.source}: OK — {len(config.locations)} location(s), "
        f"{len(config.channels)} channel(s), {len(config.bundles)} bundle(s); store: {store}"
    )
