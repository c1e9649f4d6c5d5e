"""``invsync bench reserve/propagate/feed/channels``: the benchmarks.

``invsync.bench`` sits above the daemon's layer: each command imports its benchmark only when it
runs (the import-linter contract allows ``invsync.daemon.cli.** -> invsync.bench.**``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click

from ..loop import run_loop
from .common import config_option, load


@click.group()
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
    from ...bench.reserve import run_reserve_bench

    figures = asyncio.run(
        run_reserve_bench(
            ops=ops, concurrency=concurrency, skus=skus, rate=rate, progress=not as_json
        )
    )
    if as_json:
        click.echo(json.dumps(figures))


@bench.command("propagate")
@config_option
@click.option("--rate", default=2000.0, show_default=True, help="Events per second offered.")
@click.option("--seconds", default=10.0, show_default=True, help="How long to offer them.")
@click.option("--skus", default=10_000, show_default=True, help="Distinct SKUs.")
@click.option("--channels", default=6, show_default=True, help="Webhook channels.")
@click.option("--batch", default=10, show_default=True, help="Events per HTTP request.")
@click.option(
    "--find-max",
    is_flag=True,
    help="Search the highest rate holding p99 < 100 ms with every event delivered "
    "(doubling from --rate, then bisection; --seconds per run).",
)
@click.option(
    "--budget",
    default=300.0,
    show_default=True,
    help="With --find-max: no new run starts after this many seconds.",
)
@click.option(
    "--daemon",
    "daemon_exe",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The invsync executable to run as the daemon (default: this one), e.g. an older "
    "build's, to compare builds with one load generator.",
)
@click.option("--json", "as_json", is_flag=True, help="Emit the figures as one JSON object.")
def bench_propagate(
    config_path: Path | None,
    rate: float,
    seconds: float,
    skus: int,
    channels: int,
    batch: int,
    find_max: bool,
    budget: float,
    daemon_exe: Path | None,
    as_json: bool,
) -> None:
    """Events/s from intake to channel acknowledgement, event->ack latency, daemon RSS and
    CPU per event; --find-max searches the highest rate that holds p99 < 100 ms."""
    from ...bench.propagate import find_max_rate, run_propagate_bench

    if rate <= 0 or seconds <= 0 or budget <= 0:
        raise click.BadParameter("--rate, --seconds and --budget must be above 0")
    if find_max:
        result = run_loop(
            find_max_rate(
                start=rate,
                seconds=seconds,
                skus=skus,
                channels=channels,
                batch=batch,
                budget_s=budget,
                progress=not as_json,
                daemon=daemon_exe,
            )
        )
        if as_json:
            click.echo(json.dumps(result))
        return
    figures = run_loop(
        run_propagate_bench(
            rate=rate,
            seconds=seconds,
            skus=skus,
            channels=channels,
            batch=batch,
            progress=not as_json,
            daemon=daemon_exe,
        )
    )
    if as_json:
        click.echo(json.dumps(figures))


@bench.command("feed")
@config_option
@click.option("--clients", default=1000, show_default=True, help="Subscribed websocket clients.")
@click.option("--rate", default=1000.0, show_default=True, help="Availability changes per second.")
@click.option("--seconds", default=10.0, show_default=True, help="How long to publish them.")
@click.option("--skus", default=1000, show_default=True, help="Distinct SKUs (x4 channels).")
@click.option(
    "--batch/--no-batch",
    default=True,
    show_default=True,
    help="Clients subscribe with batch frames (else one frame per change, the spec's default).",
)
@click.option(
    "--compression/--no-compression",
    default=False,
    show_default=True,
    help="Clients offer permessage-deflate (browsers do).",
)
@click.option(
    "--gc-gen0",
    type=int,
    default=None,
    help="First GC threshold of the server process (default: Python's, as the daemon runs).",
)
@click.option("--json", "as_json", is_flag=True, help="Emit the figures as one JSON object.")
def bench_feed(
    config_path: Path | None,
    clients: int,
    rate: float,
    seconds: float,
    skus: int,
    batch: bool,
    compression: bool,
    gc_gen0: int | None,
    as_json: bool,
) -> None:
    """Websocket feed: deltas delivered/s to N clients, change->delivery p50/p99, server RSS."""
    from ...bench.feed import run_feed_bench

    figures = run_loop(
        run_feed_bench(
            clients=clients,
            rate=rate,
            seconds=seconds,
            skus=skus,
            batch=batch,
            compression=compression,
            gc_gen0=gc_gen0,
            progress=not as_json,
        )
    )
    if as_json:
        click.echo(json.dumps(figures))


@bench.command("channels")
@config_option
@click.option("--skus", default=2000, show_default=True, help="SKUs in each channel's full sync.")
@click.option(
    "--channel", "only", multiple=True, help="Only this channel id (repeatable); default all."
)
@click.option("--json", "as_json", is_flag=True, help="Emit the figures as one JSON object.")
def bench_channels(
    config_path: Path | None, skus: int, only: tuple[str, ...], as_json: bool
) -> None:
    """Full sync of N SKUs on each simulated marketplace: seconds, SKUs/s, call p50/p99."""
    from ...bench.channels import render, run_channels_bench

    config = load(config_path)
    try:
        figures = run_loop(run_channels_bench(config, skus, list(only) or None))
    except ValueError as exc:
        click.echo(f"invsync bench channels: {exc}", err=True)
        sys.exit(2)
    click.echo(json.dumps(figures) if as_json else render(figures))


@bench.command("memory")
@config_option
@click.option("--skus", default=100_000, show_default=True, help="SKUs to import.")
@click.option(
    "--settle-s",
    default=60.0,
    show_default=True,
    help="At most this long after the import for the channels to push what is pending.",
)
@click.option("--json", "as_json", is_flag=True, help="Emit the figures as one JSON object.")
def bench_memory(config_path: Path | None, skus: int, settle_s: float, as_json: bool) -> None:
    """Store bytes/SKU and daemon RSS bytes/SKU after importing N SKUs on the shipped config
    (or -c CONFIG) with every channel on the simulators."""
    from ...bench.memory import render, run_memory_bench

    if skus < 1:
        click.echo("invsync bench memory: --skus must be at least 1", err=True)
        sys.exit(2)
    try:
        figures = run_loop(
            run_memory_bench(skus=skus, settle_s=settle_s, source=config_path, progress=not as_json)
        )
    except ValueError as exc:
        click.echo(f"invsync bench memory: {exc}", err=True)
        sys.exit(2)
    click.echo(json.dumps(figures) if as_json else render(figures))
