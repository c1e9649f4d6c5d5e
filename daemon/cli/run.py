"""``invsync run`` (the daemon in the foreground) and ``invsync check-config``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import click

from ...adapters.base import AdapterContext
from ...adapters.registry import make_adapter
from ...core.config import Channel, Config, LogFormat
from ...core.errors import InvsyncError
from .. import logs
from ..fulfillment import fulfillment_problems
from ..loop import run_loop
from ..service import serve
from .common import config_option, fail, load, log_format_option, log_level_option


@click.command()
@config_option
@log_level_option
@log_format_option
def run(config_path: Path | None, log_level: str, log_format: LogFormat | None) -> None:
    """Run the daemon until SIGTERM/SIGINT."""
    config = load(config_path)
    logs.configure(format=log_format or config.logging.format, level=log_level)
    try:
        code = run_loop(serve(config))
    except InvsyncError as exc:
        fail(exc)
    sys.exit(code)


@click.command("check-config")
@config_option
@click.option(
    "--skip-env",
    is_flag=True,
    help="Check the file only, not whether the credential variables it names are set here "
    "(for a shell without the service's environment).",
)
def check_config(config_path: Path | None, skip_env: bool) -> None:
    """Validate a config file and the credentials its channels name in this environment;
    exit 2 naming the key or the unset variable on error."""
    config = load(config_path)
    problems = [] if skip_env else channel_problems(config)
    fatal = False
    for channel, reason in problems:
        if channel.optional:
            click.echo(f"invsync: warning: optional {reason} (it will not run)", err=True)
        else:
            click.echo(f"invsync: config error: {reason}", err=True)
            fatal = True
    for reason in [] if skip_env else fulfillment_problems(config):
        click.echo(f"invsync: config error: {reason}", err=True)
        fatal = True
    if fatal:
        click.echo(
            "invsync: the daemon would not start: set the variable(s), disable the channel "
            "(enabled = false) or mark it optional = true",
            err=True,
        )
        sys.exit(2)
    store = config.redis.url or f"embedded Valkey in {config.redis.data_dir}"
    click.echo(
        f"{config.source}: OK — {len(config.locations)} location(s), "
        f"{len(config.channels)} channel(s), {len(config.bundles)} bundle(s); store: {store}"
    )


def channel_problems(config: Config) -> list[tuple[Channel, str]]:
    """Each enabled channel whose adapter cannot be made in this environment, and why (an unset
    credential variable, named): the same check the daemon's start makes, without a store or
    a connection (adapters connect on first use)."""

    async def probe() -> list[tuple[Channel, str]]:
        found: list[tuple[Channel, str]] = []
        async with aiohttp.ClientSession() as session:
            ctx = AdapterContext(
                session=session,
                mqtt=config.mqtt if config.mqtt.url else None,
                base_dir=config.source.parent,
            )
            for channel in config.channels:
                if not channel.enabled:
                    continue
                try:
                    adapter = make_adapter(channel, ctx)
                except ValueError as exc:  # MissingSecret names the variable
                    found.append((channel, str(exc)))
                    continue
                if adapter is None:
                    found.append(
                        (channel, f"channel '{channel.id}': no adapter for kind {channel.kind!r}")
                    )
                else:
                    await adapter.aclose()
        return found

    return asyncio.run(probe())
