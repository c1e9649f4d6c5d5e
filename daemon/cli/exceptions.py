"""``invsync exceptions list/show/resolve``: the exception queue, through the running daemon."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import config_option, load, through_daemon
from .tables import echo_table, iso_time, make_table

if TYPE_CHECKING:
    from ..client import DaemonClient


@click.group()
def exceptions() -> None:
    """The exception queue: list, show, resolve (through the running daemon)."""


def _render_exception(record: dict[str, Any]) -> str:
    lines = [
        f"{record['id']}  {record['kind']}  {record['state']}",
        f"  {record['summary']}",
    ]
    for name in ("channel", "order_id", "sku", "event_id"):
        if record.get(name):
            lines.append(f"  {name}: {record[name]}")
    lines.append(f"  opened: {iso_time(record.get('created_ms'))}")
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
            f"at {iso_time(record.get('resolved_ms'))}: {json.dumps(record.get('resolution'))}"
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
    config = load(config_path)

    async def work(client: DaemonClient) -> list[dict[str, Any]]:
        return await client.exceptions(
            state="all" if show_all else "open", kind=kind, channel=channel, limit=limit
        )

    records = through_daemon(config, work)
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    if not records:
        click.echo("no exceptions" if show_all else "no open exceptions")
        return
    table = make_table(("id", "kind", "state", "opened", "where", "summary"))
    for r in records:
        where = "/".join(x for x in (r.get("channel"), r.get("order_id") or r.get("sku")) if x)
        table.add_row(
            r["id"], r["kind"], r["state"], iso_time(r.get("created_ms")), where or "-",
            r["summary"],
        )
    echo_table(table)
    click.echo(
        f"{len(records)} {'exception' if len(records) == 1 else 'exceptions'}, newest first; "
        "`invsync exceptions show ID` for the context and the options"
    )


@exceptions.command("show")
@click.argument("exception_id")
@click.option("--json", "as_json", is_flag=True, help="The record as GET /v1/exceptions/{id}.")
@config_option
def exceptions_show(exception_id: str, as_json: bool, config_path: Path | None) -> None:
    """One exception: what happened, the options and their effect, its resolution."""
    config = load(config_path)

    async def work(client: DaemonClient) -> dict[str, Any]:
        return await client.exception(exception_id)

    record = through_daemon(config, work)
    click.echo(json.dumps(record, indent=2) if as_json else _render_exception(record))


@exceptions.command("resolve")
@click.argument("exception_id")
@click.option("--action", "-a", required=True, help="One of the options `show` lists.")
@click.option(
    "--by",
    default=None,
    help="Who resolves it: recorded from the token (see docs/api.md); a different name is "
    "refused.",
)
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
    config = load(config_path)

    async def work(client: DaemonClient) -> dict[str, Any]:
        return await client.resolve_exception(exception_id, action, by=by, sku=sku, note=note)

    record = through_daemon(config, work)
    if as_json:
        click.echo(json.dumps(record, indent=2))
    else:
        click.echo(_render_exception(record))
    if record["state"] == "open":  # the action ran but did not settle it (e.g. no stock)
        sys.exit(1)
