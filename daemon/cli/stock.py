"""``invsync stock set/adjust/show/history/import``: operator stock changes and views.

The changes go through the running daemon's HTTP API (``DaemonClient``), so they flow to the
channels like any other event; ``--direct`` (and ``import`` or ``show`` when no daemon answers)
act on a stopped daemon's store instead.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ...core.config import Config
from ...core.errors import BY_CODE, InvsyncError
from ...engine import history
from ...engine.engine import Engine
from ...engine.keys import check_event_id, check_sku
from .. import importer
from ..stockview import stock_view
from . import progress
from .common import config_option, fail, load, with_daemon, with_engine
from .tables import render_stock

if TYPE_CHECKING:
    from ..client import DaemonClient

#: How long ``stock set/adjust`` wait for the daemon to apply the change before printing it.
APPLY_WAIT_S = 5.0
#: Rows per request when ``stock import`` goes through the daemon.
IMPORT_CHUNK = 1000


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


def _daemon_alive(config: Config) -> bool:
    async def probe(client: DaemonClient) -> bool:
        return await client.alive()

    return with_daemon(config, probe)


def _not_running(config: Config, exc: InvsyncError) -> None:
    click.echo(
        f"invsync: the daemon at {config.server.host}:{config.server.port} is not running "
        f"({exc.details.get('reason', exc.message)}).\nStart it with `invsync run`, or pass "
        "--direct to change a stopped daemon's store directly.",
        err=True,
    )
    sys.exit(1)


def _warn_if_running(config: Config) -> None:
    if _daemon_alive(config):
        click.echo(
            f"invsync: warning: the daemon at {config.server.host}:{config.server.port} is "
            "running; a --direct change bypasses it and reaches the channels only with the "
            "SKU's next change. Leave out --direct to go through the daemon.",
            err=True,
        )


def _apply_through_daemon(config: Config, event: dict[str, Any]) -> dict[str, Any] | None:
    """Send one operator event, wait for it to be applied, return the SKU's view after it.

    Exits 1 when the daemon does not answer or refused the change, 2 when it is malformed.
    """
    from ..client import DaemonUnavailable

    async def work(client: DaemonClient) -> tuple[dict[str, Any], dict[str, Any] | None]:
        reply = await client.post_events([event], wait=APPLY_WAIT_S)
        result = reply.get("results", {}).get(event["id"]) or {"outcome": "pending"}
        return result, await client.stock(event["sku"])

    try:
        result, view = with_daemon(config, work)
    except DaemonUnavailable as exc:
        _not_running(config, exc)
        raise AssertionError("unreachable") from exc
    except InvsyncError as exc:
        fail(exc)
        raise AssertionError("unreachable") from exc
    outcome = result.get("outcome")
    if outcome == "refused":
        code = str(result.get("code", "REFUSED"))
        click.echo(f"invsync: {code}: {_result_message(result)}", err=True)
        known = BY_CODE.get(code)
        sys.exit(2 if known is not None and known.http_status == 400 else 1)
    if outcome == "pending":
        click.echo(
            f"invsync: event {event['id']} is recorded but was not applied within "
            f"{APPLY_WAIT_S:g} s; the daemon applies it in order (showing the current state)",
            err=True,
        )
    return view


def _print_view(view: dict[str, Any] | None, sku: str) -> None:
    if view is None:  # recorded, not applied yet, and the SKU had no stock before
        click.echo(f"{sku}: not stocked yet (the change is recorded and will apply)")
    else:
        render_stock(view)


def _result_message(result: dict[str, Any]) -> str:
    return str(result.get("message") or result.get("error") or "the daemon refused the change")


@click.group()
def stock() -> None:
    """Operator stock commands: set, adjust, show, import, sample."""


_DIRECT_HELP = (
    "Change the store directly instead of through the running daemon "
    "(for a stopped daemon, e.g. bootstrapping)."
)


@stock.command("set")
@click.argument("sku")
@click.option("--location", "-l", required=True, help="Location id from the config.")
@click.option("--on-hand", type=int, help="Units physically on hand.")
@click.option("--safety-stock", type=int, help="Units held back from every channel.")
@click.option("--damaged", type=int, help="Units on hand that cannot be sold.")
@click.option("--incoming", type=int, help="Units expected (not on hand).")
@click.option("--event-id", help="Idempotency key (default: a new random id).")
@click.option("--direct", is_flag=True, help=_DIRECT_HELP)
@config_option
def stock_set(
    sku: str,
    location: str,
    on_hand: int | None,
    safety_stock: int | None,
    damaged: int | None,
    incoming: int | None,
    event_id: str | None,
    direct: bool,
    config_path: Path | None,
) -> None:
    """Set absolute counts of SKU at a location (a physical count)."""
    config = load(config_path)
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
        fail(exc)
    if not direct:
        event = {"id": base, "type": "stock.counted", "location": location, "sku": sku, **wanted}
        _print_view(_apply_through_daemon(config, event), sku)
        return
    _warn_if_running(config)

    async def work(engine: Engine) -> dict[str, Any]:
        outcome = None
        for state, qty in wanted.items():
            outcome = await engine.count(
                f"{base}:{state}", sku, location, qty, state=state, reason="operator"
            )
        assert outcome is not None
        return stock_view(config, sku, outcome.skus[sku])

    render_stock(with_engine(config, work))


@stock.command("adjust")
@click.argument("sku")
@click.option("--location", "-l", required=True, help="Location id from the config.")
@click.option("--delta", type=int, required=True, help="Units to add (negative to remove).")
@click.option("--reason", default="correction", show_default=True)
@click.option("--event-id", help="Idempotency key (default: a new random id).")
@click.option("--direct", is_flag=True, help=_DIRECT_HELP)
@config_option
def stock_adjust(
    sku: str,
    location: str,
    delta: int,
    reason: str,
    event_id: str | None,
    direct: bool,
    config_path: Path | None,
) -> None:
    """Change on_hand of SKU at a location by DELTA units."""
    config = load(config_path)
    _check_location(config, location)
    if delta == 0:
        raise click.BadParameter("must not be 0", param_hint="--delta")
    if not direct:
        event = {
            "id": _event_id(event_id),
            "type": "stock.adjusted",
            "location": location,
            "sku": sku,
            "delta": delta,
            "reason": reason,
        }
        _print_view(_apply_through_daemon(config, event), sku)
        return
    _warn_if_running(config)

    async def work(engine: Engine) -> dict[str, Any]:
        outcome = await engine.adjust(_event_id(event_id), sku, location, delta, reason=reason)
        return stock_view(config, sku, outcome.skus[sku])

    render_stock(with_engine(config, work))


@stock.command("show")
@click.argument("sku")
@click.option("--json", "as_json", is_flag=True, help="The same JSON as GET /v1/stock/{sku}.")
@config_option
def stock_show(sku: str, as_json: bool, config_path: Path | None) -> None:
    """Per-location states and per-channel availability of SKU."""
    config = load(config_path)
    bundle = config.bundle_map().get(sku)
    from ..client import DaemonUnavailable

    async def ask(client: DaemonClient) -> dict[str, Any] | None:
        return await client.stock(sku)

    async def read(engine: Engine) -> dict[str, Any] | None:
        state = await engine.stock(sku)
        if bundle is None:
            return None if state is None else stock_view(config, sku, state)
        components = {c: await engine.stock(c) for c in bundle.components}
        return stock_view(config, sku, state, components)

    try:
        view = with_daemon(config, ask)
    except DaemonUnavailable:
        view = with_engine(config, read)  # no daemon: read its store directly
    except InvsyncError as exc:
        fail(exc)
    if view is None:
        click.echo(f"invsync: UNKNOWN_SKU: {sku} has never been stocked", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(view, indent=2))
    else:
        render_stock(view)


@stock.command("history")
@click.argument("sku")
@click.option(
    "--count",
    type=click.IntRange(1, history.CAP),
    default=20,
    show_default=True,
    help=f"How many of the latest movements (the store keeps {history.CAP} per SKU).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per movement.")
@config_option
def stock_history(sku: str, count: int, as_json: bool, config_path: Path | None) -> None:
    """The latest operator movements (counts, adjustments, imports) of SKU, newest first."""
    config = load(config_path)
    try:
        check_sku(sku)
    except InvsyncError as exc:
        fail(exc)

    async def read(engine: Engine) -> list[dict[str, str]]:
        return await engine.history(sku, count=count)

    rows = with_engine(config, read)  # read-only: the store directly, daemon running or not
    if not rows:
        click.echo(f"invsync: {sku} has no recorded movements", err=True)
        sys.exit(1)
    for row in rows:
        if as_json:
            click.echo(json.dumps(row))
        else:
            click.echo(
                f"{row['id']}  {row['op']:<6} {row['location']} {row['state']} "
                f"{row['from']} -> {row['to']}  {row['reason']}  event {row['event']}"
            )


@stock.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option
def stock_import(csv_file: Path, config_path: Path | None) -> None:
    """Load on_hand counts from a CSV with header sku,location,on_hand (checked whole first)."""
    config = load(config_path)
    try:
        digest, rows = importer.parse(csv_file, [loc.id for loc in config.locations])
    except importer.ImportFileError as exc:
        click.echo(f"invsync: {exc}", err=True)
        sys.exit(2)

    result = _import_through_daemon(config, digest, rows)
    if result is None:  # no daemon answers: load its store directly (the spec allows it)

        async def work(engine: Engine) -> importer.ImportResult:
            with progress.bar(f"importing {csv_file.name} into the store", len(rows)) as done:
                return await importer.apply(engine, digest, rows, on_progress=done)

        result = with_engine(config, work)
    pending = result.pending if isinstance(result, _ApiImportResult) else 0
    click.echo(
        f"{csv_file}: {result.applied} applied, {result.duplicates} already applied, "
        f"{len(result.refused)} refused" + (f", {pending} not yet applied" if pending else "")
    )
    for line in result.refused[:20]:
        click.echo(f"  refused {line}", err=True)
    sys.exit(1 if result.refused else 0)


@dataclass(slots=True)
class _ApiImportResult(importer.ImportResult):
    """An import through the daemon: also rows recorded but not applied within the wait."""

    pending: int = 0


def _import_through_daemon(
    config: Config, digest: str, rows: list[importer.Row]
) -> importer.ImportResult | None:
    """Send the rows as ``stock.counted`` events in chunks, each applied before the next goes
    (bounded, in order); None when no daemon answers. Exits 1 if it stops answering midway."""
    from ..client import DaemonUnavailable

    result = _ApiImportResult()
    sent = 0

    async def work(client: DaemonClient) -> bool:
        if not await client.alive():
            return False
        with progress.bar("importing through the daemon", len(rows)) as done:
            await send(client, done)
        return True

    async def send(client: DaemonClient, done: Callable[[int], None]) -> None:
        nonlocal sent
        for start in range(0, len(rows), IMPORT_CHUNK):
            chunk = rows[start : start + IMPORT_CHUNK]
            events = [
                {
                    "id": f"import-{digest}-{row.line}",
                    "type": "stock.counted",
                    "location": row.location,
                    "sku": row.sku,
                    "on_hand": row.on_hand,
                }
                for row in chunk
            ]
            reply = await client.post_events(events, wait=30.0)
            sent += len(chunk)
            results = reply.get("results", {})
            for row, event in zip(chunk, events, strict=True):
                found = results.get(event["id"]) or {"outcome": "pending"}
                match found.get("outcome"):
                    case "applied":
                        result.applied += 1
                    case "duplicate":
                        result.duplicates += 1
                    case "refused":
                        result.refused.append(f"line {row.line}: {_result_message(found)}")
                    case _:
                        result.pending += 1
            done(len(chunk))

    try:
        through = with_daemon(config, work)
    except DaemonUnavailable as exc:
        click.echo(
            f"invsync: {exc.message}\n{sent} of {len(rows)} rows were recorded; import the same "
            "file again to finish (rows already applied change nothing).",
            err=True,
        )
        sys.exit(1)
    except InvsyncError as exc:
        fail(exc)
    return result if through else None


@stock.command("sample")
@click.option(
    "--rows",
    type=click.IntRange(1, 10_000_000),
    default=100_000,
    show_default=True,
    help="Rows to write.",
)
@click.option("--seed", default=0, show_default=True, help="Another seed, other quantities.")
@config_option
def stock_sample(rows: int, seed: int, config_path: Path | None) -> None:
    """Write a sample import file (sku,location,on_hand) on stdout, the same every time.

    SKUs SAMPLE-000001, SAMPLE-000002, ... each at every location of the config in turn, with
    on_hand from 0 to 200: `invsync stock sample > stock.csv`, then `invsync stock import
    stock.csv`. `make run` lists the SKUs of the default 100,000 rows on the simulated
    marketplaces, so a sample of up to that many rows is accepted there.
    """
    config = load(config_path)
    locations = config.location_ids()
    if not locations:
        click.echo("invsync: the config has no [[locations]] to put stock at", err=True)
        sys.exit(2)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(importer.HEADER)
    writer.writerows(importer.sample(rows, locations, seed=seed))
    try:
        sys.stdout.write(out.getvalue())
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader has seen enough
        sys.stderr.close()
        sys.exit(0)
