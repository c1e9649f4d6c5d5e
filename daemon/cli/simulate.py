"""``invsync simulate``: the local marketplace simulators for the config's channels."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import click
import msgspec

from ...core.config import LogFormat
from .. import importer, logs
from ..loop import run_loop
from ..security import client_token
from .common import config_option, load, log_format_option, log_level_option


@click.command()
@config_option
@click.option("--port", type=int, help="Listen here instead of [simulator] port.")
@click.option(
    "--orders-per-minute", type=float, help="Order traffic to the daemon ([simulator] default)."
)
@click.option(
    "--catalogue",
    "catalogue_paths",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A stock CSV (sku,location,on_hand, as `stock import` reads): its SKUs, and the config's "
    "bundle SKUs, are listed on every simulated channel at start. Repeatable.",
)
@log_level_option
@log_format_option
def simulate(
    config_path: Path | None,
    port: int | None,
    orders_per_minute: float | None,
    catalogue_paths: tuple[Path, ...],
    log_level: str,
    log_format: LogFormat | None,
) -> None:
    """Run the local marketplace simulators for the config's channels until SIGTERM/SIGINT.

    Every channel whose url starts with http://{[simulator] host}:{port}/ is served at the rest
    of its url with its marketplace's API; orders go to the daemon as signed webhooks. A
    simulator refuses a quantity for a SKU the seller has not listed on it, as its marketplace
    does: --catalogue lists the SKUs of a stock file (and the config's bundles, which the
    seller lists too) on every channel.

    The demo lives around them ([simulator] in docs/configuration.md): orders ship or are
    cancelled, stores sell and take returns, locations receive stock, and now and then an
    oversell or a drift shows the exception flow. Its stores and receiving docks use the
    daemon's API with the token the invsync commands use (read once the daemon has made it).
    """
    from ...simulators.server import Simulator

    config = load(config_path)
    logs.configure(format=log_format or config.logging.format, level=log_level)
    listed: set[str] = set()
    for catalogue_path in catalogue_paths:
        try:
            _, rows = importer.parse(catalogue_path, [loc.id for loc in config.locations])
        except importer.ImportFileError as exc:
            click.echo(f"invsync simulate: --catalogue: {exc}", err=True)
            sys.exit(2)
        listed.update(row.sku for row in rows)
    catalogue = sorted(listed | {b.sku for b in config.bundles}) if catalogue_paths else []
    if port is not None or orders_per_minute is not None:
        sim_cfg = msgspec.structs.replace(
            config.simulator,
            port=config.simulator.port if port is None else port,
            orders_per_minute=(
                config.simulator.orders_per_minute
                if orders_per_minute is None
                else orders_per_minute
            ),
        )
        config = msgspec.structs.replace(config, simulator=sim_cfg)

    async def serve_simulators() -> int:
        try:
            sim = Simulator.from_config(config, token=lambda: client_token(config))
        except ValueError as exc:
            click.echo(f"invsync simulate: {exc}", err=True)
            return 2
        sim.list_skus(catalogue)
        # Order numbers move on with the clock (ten a second), so a run after an earlier one
        # against the same store never repeats its order ids.
        sim.number_orders_from(int(time.time() * 10) % 10**10)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            async with sim:
                await stop.wait()
        except OSError as exc:
            click.echo(f"invsync simulate: cannot listen on {sim.url}: {exc}", err=True)
            return 1
        return 0

    sys.exit(run_loop(serve_simulators()))
