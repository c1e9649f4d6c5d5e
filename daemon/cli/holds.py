"""``invsync holds place/release/show``: checkout reservations and quotes, through the daemon.

``place`` and ``release`` send ``hold.placed`` / ``hold.released`` to ``POST /v1/events`` and
wait for the outcome, so a hold placed here is routed, pushed and lapses like one a storefront
placed; ``show`` prints ``GET /v1/holds/{hold_id}``.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ...core.errors import BY_CODE
from ...core.events import HOLD_MAX_TTL_S
from .common import config_option, load, through_daemon

if TYPE_CHECKING:
    from ..client import DaemonClient

#: How long ``place`` / ``release`` wait for the daemon to apply the event.
APPLY_WAIT_S = 5.0


@click.group()
def holds() -> None:
    """Holds: reserve stock for a checkout or a quote, release it, show it."""


def _line(text: str) -> dict[str, Any]:
    sku, sep, qty = text.rpartition("=")
    if not sep or not sku or not qty.isdigit() or int(qty) < 1:
        raise click.BadParameter(f"{text!r}: expected SKU=QTY with QTY a positive integer")
    return {"sku": sku, "qty": int(qty)}


def render_hold(view: dict[str, Any]) -> str:
    """A hold view as text for a terminal."""
    out = [f"{view['hold_id']}  {view['state']}  channel {view.get('channel')}"]
    if view["state"] == "refused":
        out.append(f"  {view.get('code')}: {view.get('message')}")
        for short in view.get("shortages") or []:
            out.append(f"  short: {json.dumps(short)}")
        return "\n".join(out)
    if view.get("expires"):
        left = view.get("expires_in_s")
        out.append(
            f"  expires {view['expires']}" + (f" (in {left:g} s)" if left is not None else "")
        )
    if view.get("converted_to"):
        done = view["converted_to"]
        out.append(f"  converted into order {done['channel']}/{done['order_id']}")
    for line in view.get("lines", []):
        out.append(
            f"  {line['sku']}  {line['qty']} at {line['location']}  (reserved {line['reserved']})"
        )
    return "\n".join(out)


def _apply(config_path: Path | None, event: dict[str, Any], as_json: bool) -> None:
    config = load(config_path)

    async def work(client: DaemonClient) -> tuple[dict[str, Any], dict[str, Any] | None]:
        reply = await client.post_events([event], wait=APPLY_WAIT_S)
        result = reply.get("results", {}).get(event["id"]) or {"outcome": "pending"}
        return result, await client.hold(event["hold_id"])

    result, view = through_daemon(config, work)
    outcome = result.get("outcome")
    if outcome == "refused":
        code = str(result.get("code", "REFUSED"))
        click.echo(f"invsync: {code}: {result.get('message')}", err=True)
        if view is not None and view.get("state") == "refused":
            for short in view.get("shortages") or []:
                click.echo(f"  short: {json.dumps(short)}", err=True)
        known = BY_CODE.get(code)
        sys.exit(2 if known is not None and known.http_status == 400 else 1)
    if outcome == "pending":
        click.echo(
            f"invsync: event {event['id']} is recorded but was not applied within "
            f"{APPLY_WAIT_S:g} s; the daemon applies it in order",
            err=True,
        )
    if view is not None:
        click.echo(json.dumps(view, indent=2) if as_json else render_hold(view))


@holds.command("place")
@click.argument("hold_id")
@click.option("--channel", required=True, help="The channel the hold is for (routing, SLA).")
@click.option(
    "--line", "lines", multiple=True, required=True, help="SKU=QTY (repeat for more lines)."
)
@click.option(
    "--ttl",
    "ttl_s",
    type=click.IntRange(1, HOLD_MAX_TTL_S),
    default=900,
    show_default=True,
    help="Seconds until the hold lapses.",
)
@click.option("--country", help="Ship-to country (routing), e.g. US.")
@click.option("--region", help="Ship-to region (routing), e.g. CA.")
@click.option("--partial", is_flag=True, help="Hold what can be served instead of nothing.")
@click.option("--event-id", help="Idempotency key (default: a new one).")
@click.option("--json", "as_json", is_flag=True, help="The hold as GET /v1/holds/{id} has it.")
@config_option
def holds_place(
    hold_id: str,
    channel: str,
    lines: tuple[str, ...],
    ttl_s: int,
    country: str | None,
    region: str | None,
    partial: bool,
    event_id: str | None,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Hold stock for HOLD_ID: every line or none (unless --partial); lapses after --ttl."""
    parsed = [_line(text) for text in lines]
    event: dict[str, Any] = {
        "id": event_id or f"cli-{uuid.uuid4().hex}",
        "type": "hold.placed",
        "hold_id": hold_id,
        "channel": channel,
        "lines": parsed,
        "ttl_s": ttl_s,
    }
    if country or region:
        event["ship_to"] = {"country": country, "region": region}
    if partial:
        event["partial"] = True
    _apply(config_path, event, as_json)


@holds.command("release")
@click.argument("hold_id")
@click.option("--event-id", help="Idempotency key (default: a new one).")
@click.option("--json", "as_json", is_flag=True, help="The hold as GET /v1/holds/{id} has it.")
@config_option
def holds_release(
    hold_id: str, event_id: str | None, as_json: bool, config_path: Path | None
) -> None:
    """Release HOLD_ID now: its units are free on every channel at once."""
    event = {
        "id": event_id or f"cli-{uuid.uuid4().hex}",
        "type": "hold.released",
        "hold_id": hold_id,
    }
    _apply(config_path, event, as_json)


@holds.command("show")
@click.argument("hold_id")
@click.option("--json", "as_json", is_flag=True, help="As GET /v1/holds/{id} answers it.")
@config_option
def holds_show(hold_id: str, as_json: bool, config_path: Path | None) -> None:
    """A hold's state, lines with their locations, and expiry."""
    config = load(config_path)

    async def work(client: DaemonClient) -> dict[str, Any] | None:
        return await client.hold(hold_id)

    view = through_daemon(config, work)
    if view is None:
        click.echo(f"invsync: UNKNOWN_HOLD: no hold {hold_id!r}", err=True)
        sys.exit(1)
    click.echo(json.dumps(view, indent=2) if as_json else render_hold(view))
