"""What the command groups share: the ``-c/--config`` option, loading the config, printing an
error with its exit code, and running work on the daemon's store or through its HTTP API."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from ...core.config import Config, ConfigError
from ...core.errors import InvsyncError
from ...engine.connection import Store
from ...engine.engine import Engine
from ..config import load_config
from ..service import open_engine, open_store

if TYPE_CHECKING:
    from ..client import DaemonClient

T = TypeVar("T")

config_option = click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file (default: $INVSYNC_CONFIG, else ./config.toml).",
)

log_level_option = click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)

log_format_option = click.option(
    "--log-format",
    default=None,
    type=click.Choice(["auto", "console", "json"]),
    help="Log lines as readable text (console) or JSON; auto: text on a terminal, JSON "
    "elsewhere. Default: [logging] format, else auto.",
)


def load(config_path: Path | None) -> Config:
    """The config at ``config_path`` (or the default one); exits 2 naming the key on error."""
    try:
        return load_config(config_path)
    except ConfigError as exc:
        click.echo(f"invsync: config error: {exc}", err=True)
        sys.exit(2)


def fail(exc: InvsyncError) -> None:
    """Print ``exc`` as ``invsync: CODE: message`` and exit 2 for bad input (HTTP 400), else 1."""
    click.echo(f"invsync: {exc.code}: {exc.message}", err=True)
    sys.exit(2 if exc.http_status == 400 else 1)


def with_engine(config: Config, work: Callable[[Engine], Awaitable[T]]) -> T:
    """Run ``work`` on an engine over the config's store (a live daemon's embedded server is
    shared; a stopped daemon's store is opened for the duration of the command)."""

    async def main() -> T:
        store: Store
        async with open_store(config, owner=False) as store, open_engine(config, store) as engine:
            return await work(engine)

    try:
        return asyncio.run(main())
    except InvsyncError as exc:
        fail(exc)
        raise AssertionError("unreachable") from exc


def with_daemon(config: Config, work: Callable[[DaemonClient], Awaitable[T]]) -> T:
    """Run ``work`` with a client of the daemon the config names; raises DaemonUnavailable
    (a subclass of InvsyncError) when it does not answer, other InvsyncErrors as answered.
    The client sends the daemon's API token (``security.client_token``: no extra step)."""
    from ..client import DaemonClient

    async def main() -> T:
        async with DaemonClient.for_config(config) as client:
            return await work(client)

    return asyncio.run(main())


def through_daemon(config: Config, work: Callable[[DaemonClient], Awaitable[T]]) -> T:
    """``work`` on the daemon; exits 1 when it does not answer, 1/2 on a refusal."""
    from ..client import DaemonUnavailable

    try:
        return with_daemon(config, work)
    except DaemonUnavailable as exc:
        click.echo(f"invsync: the daemon is not running ({exc.message})", err=True)
        sys.exit(1)
    except InvsyncError as exc:
        fail(exc)
        raise AssertionError("unreachable") from exc
