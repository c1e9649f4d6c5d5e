"""The ``invsync`` command line (click): the daemon, config checks, operator stock commands, bench.

Exit codes: 0 done; 1 the store refused the change (conflict, unknown SKU) or is unavailable;
2 bad usage, bad config or a malformed input file (nothing applied).
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..engine.connection import Store
from ..engine.engine import Engine
from ..engine.errors import InvsyncError
from ..engine.keys import check_event_id
from . import importer, logs
from .config import Config, ConfigError, load_config
from .service import open_engine, open_store, serve
from .stockview import render_text, stock_view

T = TypeVar("T")

config_option = click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file (default: $INVSYNC_CONFIG, else ./config.toml).",
)


def _load(config_path: Path | None) -> Config:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        click.echo(f"invsync: config error: {exc}", err=True)
        sys.exit(2)


def _fail(exc: InvsyncError) -> None:
    click.echo(f"invsync: {exc.code}: {exc.message}", err=True)
    sys.exit(2 if exc.http_status == 400 else 1)


def _with_engine(config: Config, work: Callable[[Engine], Awaitable[T]]) -> T:
    """Run ``work`` on an engine over the config's store (a live daemon's embedded server is
    shared; a stopped daemon's store is opened for the duration of the command)."""

    async def main() -> T:
        store: Store
        async with open_store(config, owner=False) as store, open_engine(config, store) as engine:
            return await work(engine)

    try:
        return asyncio.run(main())
    except InvsyncError as exc:
        _fail(exc)
        raise AssertionError("unreachable") from exc


def _check_location(config: Config, location: str) -> None:
    known = [loc.id for loc in config.locations]
    if location not in known:
        click.echo(
            f"invsync: UNKNOWN_LOCATION: unknown location {location!r} (known: {', '.join(known)})",
            err=True,
        )
        sys.exit(2)


def _event_id(given: str | None) -> str:
    return given or f"cli-{uuid.uuid4().hex}"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="invsync")
def main() -> None:
    """invsync: real-time omnichannel inventory sync."""
    logs.configure(level="warning", stream=sys.stderr)


@main.command()
@config_option
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def run(config_path: Path | None, log_level: str) -> None:
    """Run the daemon until SIGTERM/SIGINT."""
    config = _load(config_path)
    logs.configure(level=log_level)
    try:
        code = asyncio.run(serve(config))
    except InvsyncError as exc:
        _fail(exc)
    sys.exit(code)


@main.command("check-config")
@config_option
def check_config(config_path: Path | None) -> None:
    """Validate a config file; exit 2 naming the key on error."""
    config = _load(config_path)
    store = config.redis.url or f"embedded Valkey in {config.redis.data_dir}"
    click.echo(
        f"{config.source}: OK — {len(config.locations)} location(s), "
        f"{len(config.channels)} channel(s), {len(config.bundles)} bundle(s); store: {store}"
    )


@main.group()
def stock() -> None:
    """Operator stock commands: set, adjust, show, import."""


@stock.command("set")
@click.argument("sku")
@click.option("--location", "-l", required=True, help="Location id from the config.")
@click.option("--on-hand", type=int, help="Units physically on hand.")
@click.option("--safety-stock", type=int, help="Units held back from every channel.")
@click.option("--damaged", type=int, help="Units on hand that cannot be sold.")
@click.option("--incoming", type=int, help="Units expected (not on hand).")
@click.option("--event-id", help="Idempotency key (default: a new random id).")
@config_option
def stock_set(
    sku: str,
    location: str,
    on_hand: int | None,
    safety_stock: int | None,
    damaged: int | None,
    incoming: int | None,
    event_id: str | None,
    config_path: Path | None,
) -> None:
    """Set absolute counts of SKU at a location (a physical count)."""
    config = _load(config_path)
    _check_location(config, location)
    states = {
        "on_hand": on_hand,
        "safety_stock": safety_stock,
        "damaged": damaged,
        "incoming": incoming,
    }
    wanted = {state: qty for state, qty in states.items() if qty is not None}
    if not wanted:
        raise click.UsageError(
            "give at least one of --on-hand, --safety-stock, --damaged, --incoming"
        )
    # Each state is its own count: all are checked first so that exit 2 means nothing applied.
    for state, qty in wanted.items():
        if not 0 <= qty <= importer.MAX_QTY:
            raise click.BadParameter(
                f"must be from 0 to {importer.MAX_QTY}, got {qty}",
                param_hint=f"--{state.replace('_', '-')}",
            )
    base = _event_id(event_id)
    try:
        for state in wanted:
            check_event_id(f"{base}:{state}")
    except InvsyncError as exc:
        _fail(exc)

    async def work(engine: Engine) -> dict[str, Any]:
        outcome = None
        for state, qty in wanted.items():
            outcome = await engine.count(
                f"{base}:{state}", sku, location, qty, state=state, reason="operator"
            )
        assert outcome is not None
        return stock_view(config, sku, outcome.skus[sku])

    click.echo(render_text(_with_engine(config, work)))


@stock.command("adjust")
@click.argument("sku")
@click.option("--location", "-l", required=True, help="Location id from the config.")
@click.option("--delta", type=int, required=True, help="Units to add (negative to remove).")
@click.option("--reason", default="correction", show_default=True)
@click.option("--event-id", help="Idempotency key (default: a new random id).")
@config_option
def stock_adjust(
    sku: str,
    location: str,
    delta: int,
    reason: str,
    event_id: str | None,
    config_path: Path | None,
) -> None:
    """Change on_hand of SKU at a location by DELTA units."""
    config = _load(config_path)
    _check_location(config, location)

    async def work(engine: Engine) -> dict[str, Any]:
        outcome = await engine.adjust(_event_id(event_id), sku, location, delta, reason=reason)
        return stock_view(config, sku, outcome.skus[sku])

    click.echo(render_text(_with_engine(config, work)))


@stock.command("show")
@click.argument("sku")
@click.option("--json", "as_json", is_flag=True, help="The same JSON as GET /v1/stock/{sku}.")
@config_option
def stock_show(sku: str, as_json: bool, config_path: Path | None) -> None:
    """Per-location states and per-channel availability of SKU."""
    config = _load(config_path)
    bundle = config.bundle_map().get(sku)

    async def work(engine: Engine) -> dict[str, Any] | None:
        state = await engine.stock(sku)
        if bundle is None:
            return None if state is None else stock_view(config, sku, state)
        components = {c: await engine.stock(c) for c in bundle.components}
        return stock_view(config, sku, state, components)

    view = _with_engine(config, work)
    if view is None:
        click.echo(f"invsync: UNKNOWN_SKU: {sku} has never been stocked", err=True)
        sys.exit(1)
    click.echo(json.dumps(view, indent=2) if as_json else render_text(view))


@stock.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option
def stock_import(csv_file: Path, config_path: Path | None) -> None:
    """Load on_hand counts from a CSV with header sku,location,on_hand (checked whole first)."""
    config = _load(config_path)
    try:
        digest, rows = importer.parse(csv_file, [loc.id for loc in config.locations])
    except importer.ImportFileError as exc:
        click.echo(f"invsync: {exc}", err=True)
        sys.exit(2)

    async def work(engine: Engine) -> importer.ImportResult:
        return await importer.apply(engine, digest, rows)

    result = _with_engine(config, work)
    click.echo(
        f"{csv_file}: {result.applied} applied, {result.duplicates} already applied, "
        f"{len(result.refused)} refused"
    )
    for line in result.refused[:20]:
        click.echo(f"  refused {line}", err=True)
    sys.exit(1 if result.refused else 0)


@main.group()
def bench() -> None:
    """Benchmarks: throughput, latency percentiles, memory."""


@bench.command("reserve")
@config_option
@click.option("--ops", default=200_000, show_default=True, help="Reservations to make.")
@click.option("--concurrency", default=256, show_default=True, help="Concurrent callers.")
@click.option("--skus", default=1000, show_default=True, help="Distinct SKUs reserved.")
@click.option(
    "--rate", type=float, default=None, help="Open-loop rate (ops/s); default: as fast as possible."
)
@click.option("--json", "as_json", is_flag=True, help="Emit the figures as one JSON object.")
def bench_reserve(
    config_path: Path | None,
    ops: int,
    concurrency: int,
    skus: int,
    rate: float | None,
    as_json: bool,
) -> None:
    """Single-line reservations/s through the engine on a fresh embedded Valkey (AOF on)."""
    from .bench import run_reserve_bench

    figures = asyncio.run(
        run_reserve_bench(
            ops=ops, concurrency=concurrency, skus=skus, rate=rate, progress=not as_json
        )
    )
    if as_json:
        click.echo(json.dumps(figures))
