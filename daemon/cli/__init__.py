"""The ``invsync`` command line (click): the daemon, config checks, operator stock commands, bench.

Operator stock commands talk to the running daemon through its HTTP API (``DaemonClient``), so
their changes flow to the channels like any other event; ``--direct`` (and ``stock import`` or
``stock show`` when no daemon answers) act on a stopped daemon's store instead.

Exit codes: 0 done; 1 the change was refused (conflict, unknown SKU) or the daemon or store is
unavailable; 2 bad usage, bad config or a malformed input file (nothing applied).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import msgspec

from ..core.config import Config, ConfigError
from ..core.errors import BY_CODE, InvsyncError
from ..engine.connection import Store
from ..engine.engine import Engine
from ..engine.keys import check_event_id
from . import importer, logs
from .config import load_config
from .loop import run_loop
from .service import open_engine, open_store, serve
from .stockview import render_text, stock_view

if TYPE_CHECKING:
    from .client import DaemonClient

T = TypeVar("T")

#: How long ``stock set/adjust`` wait for the daemon to apply the change before printing it.
APPLY_WAIT_S = 5.0
#: Rows per request when ``stock import`` goes through the daemon.
IMPORT_CHUNK = 1000

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


def _with_daemon(config: Config, work: Callable[[DaemonClient], Awaitable[T]]) -> T:
    """Run ``work`` with a client of the daemon the config names; raises DaemonUnavailable
    (a subclass of InvsyncError) when it does not answer, other InvsyncErrors as answered."""
    from .client import DaemonClient

    async def main() -> T:
        async with DaemonClient(config.server) as client:
            return await work(client)

    return asyncio.run(main())


def _daemon_alive(config: Config) -> bool:
    async def probe(client: DaemonClient) -> bool:
        return await client.alive()

    return _with_daemon(config, probe)


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
    from .client import DaemonUnavailable

    async def work(client: DaemonClient) -> tuple[dict[str, Any], dict[str, Any] | None]:
        reply = await client.post_events([event], wait=APPLY_WAIT_S)
        result = reply.get("results", {}).get(event["id"]) or {"outcome": "pending"}
        return result, await client.stock(event["sku"])

    try:
        result, view = _with_daemon(config, work)
    except DaemonUnavailable as exc:
        _not_running(config, exc)
        raise AssertionError("unreachable") from exc
    except InvsyncError as exc:
        _fail(exc)
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
        click.echo(render_text(view))


def _result_message(result: dict[str, Any]) -> str:
    return str(result.get("message") or result.get("error") or "the daemon refused the change")


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
        code = run_loop(serve(config))
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

    click.echo(render_text(_with_engine(config, work)))


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
    config = _load(config_path)
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

    click.echo(render_text(_with_engine(config, work)))


@stock.command("show")
@click.argument("sku")
@click.option("--json", "as_json", is_flag=True, help="The same JSON as GET /v1/stock/{sku}.")
@config_option
def stock_show(sku: str, as_json: bool, config_path: Path | None) -> None:
    """Per-location states and per-channel availability of SKU."""
    config = _load(config_path)
    bundle = config.bundle_map().get(sku)
    from .client import DaemonUnavailable

    async def ask(client: DaemonClient) -> dict[str, Any] | None:
        return await client.stock(sku)

    async def read(engine: Engine) -> dict[str, Any] | None:
        state = await engine.stock(sku)
        if bundle is None:
            return None if state is None else stock_view(config, sku, state)
        components = {c: await engine.stock(c) for c in bundle.components}
        return stock_view(config, sku, state, components)

    try:
        view = _with_daemon(config, ask)
    except DaemonUnavailable:
        view = _with_engine(config, read)  # no daemon: read its store directly
    except InvsyncError as exc:
        _fail(exc)
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

    result = _import_through_daemon(config, digest, rows)
    if result is None:  # no daemon answers: load its store directly (the spec allows it)

        async def work(engine: Engine) -> importer.ImportResult:
            return await importer.apply(engine, digest, rows)

        result = _with_engine(config, work)
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
    from .client import DaemonUnavailable

    result = _ApiImportResult()
    sent = 0

    async def work(client: DaemonClient) -> bool:
        nonlocal sent
        if not await client.alive():
            return False
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
        return True

    try:
        through = _with_daemon(config, work)
    except DaemonUnavailable as exc:
        click.echo(
            f"invsync: {exc.message}\n{sent} of {len(rows)} rows were recorded; import the same "
            "file again to finish (rows already applied change nothing).",
            err=True,
        )
        sys.exit(1)
    except InvsyncError as exc:
        _fail(exc)
    return result if through else None


@main.group()
def exceptions() -> None:
    """The exception queue: list, show, resolve (through the running daemon)."""


def _through_daemon(config: Config, work: Callable[[DaemonClient], Awaitable[T]]) -> T:
    """``work`` on the daemon; exits 1 when it does not answer, 1/2 on a refusal."""
    from .client import DaemonUnavailable

    try:
        return _with_daemon(config, work)
    except DaemonUnavailable as exc:
        click.echo(f"invsync: the daemon is not running ({exc.message})", err=True)
        sys.exit(1)
    except InvsyncError as exc:
        _fail(exc)
        raise AssertionError("unreachable") from exc


def _ms_text(ms: object) -> str:
    if not isinstance(ms, int):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def _render_exception(record: dict[str, Any]) -> str:
    lines = [
        f"{record['id']}  {record['kind']}  {record['state']}",
        f"  {record['summary']}",
    ]
    for name in ("channel", "order_id", "sku", "event_id"):
        if record.get(name):
            lines.append(f"  {name}: {record[name]}")
    lines.append(f"  opened: {_ms_text(record.get('created_ms'))}")
    details = record.get("details") or {}
    for name, value in details.items():
        if value not in (None, {}, []):
            lines.append(f"  {name}: {json.dumps(value)}")
    if record["state"] == "open":
        lines.append("  options:")
        for option in record.get("options", []):
            mark = "" if option.get("possible", True) else f"  [not now: {option.get('why_not')}]"
            lines.append(f"    {option['action']:<11} {option['effect']}{mark}")
    else:
        lines.append(
            f"  {record['state']} by {record.get('resolved_by')} with {record.get('action')} "
            f"at {_ms_text(record.get('resolved_ms'))}: {json.dumps(record.get('resolution'))}"
        )
    for attempt in record.get("attempts", []):
        lines.append(f"  attempt: {json.dumps(attempt)}")
    return "\n".join(lines)


@exceptions.command("list")
@click.option("--all", "show_all", is_flag=True, help="Resolved ones too (default: open only).")
@click.option("--kind", help="Only this kind (oversold, drift, ...).")
@click.option("--channel", help="Only this channel.")
@click.option("--limit", default=100, show_default=True, help="At most this many (newest first).")
@click.option("--json", "as_json", is_flag=True, help="The records as GET /v1/exceptions has them.")
@config_option
def exceptions_list(
    show_all: bool,
    kind: str | None,
    channel: str | None,
    limit: int,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """The exception queue, newest first."""
    config = _load(config_path)

    async def work(client: DaemonClient) -> list[dict[str, Any]]:
        return await client.exceptions(
            state="all" if show_all else "open", kind=kind, channel=channel, limit=limit
        )

    records = _through_daemon(config, work)
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    if not records:
        click.echo("no exceptions" if show_all else "no open exceptions")
    for r in records:
        where = "/".join(x for x in (r.get("channel"), r.get("order_id") or r.get("sku")) if x)
        click.echo(
            f"{r['id']:<15} {r['kind']:<24} {r['state']:<13} {_ms_text(r['created_ms'])}  "
            f"{where}  {r['summary']}"
        )


@exceptions.command("show")
@click.argument("exception_id")
@click.option("--json", "as_json", is_flag=True, help="The record as GET /v1/exceptions/{id}.")
@config_option
def exceptions_show(exception_id: str, as_json: bool, config_path: Path | None) -> None:
    """One exception: what happened, the options and their effect, its resolution."""
    config = _load(config_path)

    async def work(client: DaemonClient) -> dict[str, Any]:
        return await client.exception(exception_id)

    record = _through_daemon(config, work)
    click.echo(json.dumps(record, indent=2) if as_json else _render_exception(record))


@exceptions.command("resolve")
@click.argument("exception_id")
@click.option("--action", "-a", required=True, help="One of the options `show` lists.")
@click.option("--by", default=None, help="Who resolves it (default: $USER).")
@click.option("--sku", help="The SKU to use instead (substitute).")
@click.option("--note", help="A note kept with the resolution.")
@click.option("--json", "as_json", is_flag=True, help="The record after the action, as JSON.")
@config_option
def exceptions_resolve(
    exception_id: str,
    action: str,
    by: str | None,
    sku: str | None,
    note: str | None,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Run ACTION for an exception (for real: a re-route reserves, a cancel releases)."""
    config = _load(config_path)
    who = by or os.environ.get("USER") or "operator"

    async def work(client: DaemonClient) -> dict[str, Any]:
        return await client.resolve_exception(exception_id, action, by=who, sku=sku, note=note)

    record = _through_daemon(config, work)
    if as_json:
        click.echo(json.dumps(record, indent=2))
    else:
        click.echo(_render_exception(record))
    if record["state"] == "open":  # the action ran but did not settle it (e.g. no stock)
        sys.exit(1)


@main.group()
def channels() -> None:
    """Channel commands: drift-check."""


@channels.command("drift-check")
@click.argument("channel")
@click.option("--sku", "skus", multiple=True, help="Only these SKUs (repeatable); default all.")
@click.option(
    "--confirm-s", type=float, help="Seconds before the second look ([exceptions] default)."
)
@click.option(
    "--settle-s",
    type=float,
    help="Skip values pushed less than this long ago ([exceptions] drift_settle_s).",
)
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@config_option
def channels_drift_check(
    channel: str,
    skus: tuple[str, ...],
    confirm_s: float | None,
    settle_s: float | None,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Read CHANNEL's quantities back now; confirmed differences become drift exceptions.

    Exit 1 when drift was found, 2 when the channel could not be read.
    """
    config = _load(config_path)

    async def work(client: DaemonClient) -> dict[str, Any]:
        return await client.drift_check(
            channel, skus=list(skus) or None, confirm_s=confirm_s, settle_s=settle_s
        )

    report = _through_daemon(config, work)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(
            f"{channel}: {report['checked']} SKU(s) read back, {report['not_listed']} not listed "
            f"there, {report['suspected']} different at first look, {len(report['drift'])} drift"
        )
        for finding in report["drift"]:
            click.echo(
                f"  {finding['sku']}: {channel} shows {finding['theirs']}, we pushed "
                f"{finding['ours']} (exception {finding['exception']})"
            )
        if report.get("error"):
            click.echo(f"error: {report['error']}", err=True)
    if report.get("error"):
        sys.exit(2)
    if report["drift"]:
        sys.exit(1)


@main.command()
@config_option
@click.option("--port", type=int, help="Listen here instead of [simulator] port.")
@click.option(
    "--orders-per-minute", type=float, help="Order traffic to the daemon ([simulator] default)."
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def simulate(
    config_path: Path | None, port: int | None, orders_per_minute: float | None, log_level: str
) -> None:
    """Run the local marketplace simulators for the config's channels until SIGTERM/SIGINT.

    Every channel whose url starts with http://{[simulator] host}:{port}/ is served at the rest
    of its url with its marketplace's API; orders go to the daemon as signed webhooks.
    """
    from ..simulators.server import Simulator

    config = _load(config_path)
    logs.configure(level=log_level)
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
            sim = Simulator.from_config(config)
        except ValueError as exc:
            click.echo(f"invsync simulate: {exc}", err=True)
            return 2
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
    from ..bench.reserve import run_reserve_bench

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
@click.option("--json", "as_json", is_flag=True, help="Emit the figures as one JSON object.")
def bench_propagate(
    config_path: Path | None,
    rate: float,
    seconds: float,
    skus: int,
    channels: int,
    batch: int,
    as_json: bool,
) -> None:
    """Events/s from intake to channel acknowledgement, event->ack latency, daemon RSS."""
    from ..bench.propagate import run_propagate_bench

    figures = asyncio.run(
        run_propagate_bench(rate=rate, seconds=seconds, skus=skus, channels=channels,
                            batch=batch, progress=not as_json)
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
    from ..bench.feed import run_feed_bench

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
    from ..bench.channels import render, run_channels_bench

    config = _load(config_path)
    try:
        figures = run_loop(run_channels_bench(config, skus, list(only) or None))
    except ValueError as exc:
        click.echo(f"invsync bench channels: {exc}", err=True)
        sys.exit(2)
    click.echo(json.dumps(figures) if as_json else render(figures))
