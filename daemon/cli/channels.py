"""``invsync channels drift-check``: read a channel's quantities back through the daemon."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import progress
from .common import config_option, load, through_daemon

if TYPE_CHECKING:
    from ..client import DaemonClient


@click.group()
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
    config = load(config_path)
    second_look = config.exceptions.drift_confirm_s if confirm_s is None else confirm_s

    async def work(client: DaemonClient) -> dict[str, Any]:
        # The daemon answers when the check is done: say what it waits for, and how long.
        progress.say(
            f"{channel}: reading its quantities back; a SKU that differs from what we pushed is "
            f"looked at again {second_look:g} s later (drift_confirm_s) before it counts as drift"
        )
        async with progress.timed(f"{channel}: drift check", second_look + 1):
            return await client.drift_check(
                channel, skus=list(skus) or None, confirm_s=confirm_s, settle_s=settle_s
            )

    report = through_daemon(config, work)
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
