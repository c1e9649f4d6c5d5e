"""How the commands print for a person: tables with headers, times in ISO 8601 with their zone.

Tables are ``rich`` tables without borders: aligned columns under a header line, bold headers on
a terminal, plain text (no colour codes, no wrapping, no trailing blanks) in a pipe or a file,
so ``grep`` and ``awk`` still work on them. ``--json`` output never goes through here.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

__all__ = ["echo_table", "iso_time", "make_table", "render_stock"]

#: Columns of the per-location part of ``stock show``, as GET /v1/stock/{sku} names them.
LOCATION_COLUMNS = ("on_hand", "reserved", "available", "safety_stock", "damaged", "incoming")
#: The width a table may take when stdout is not a terminal (no wrapping in pipes and files).
_PIPE_WIDTH = 10_000


def iso_time(ms: object) -> str:
    """Epoch milliseconds as local time in ISO 8601 with its UTC offset (``-`` when unknown),
    e.g. ``2026-12-03T21:55:44+01:00``."""
    if not isinstance(ms, int | float) or isinstance(ms, bool):
        return "-"
    return datetime.fromtimestamp(ms / 1000).astimezone().isoformat(timespec="seconds")


def make_table(headers: Sequence[str], *, right: Iterable[str] = ()) -> Table:
    """A borderless table with ``headers``; the columns named in ``right`` align right."""
    numeric = set(right)
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, justify="right" if header in numeric else "left")
    return table


def echo_table(table: Table, *, err: bool = False) -> None:
    """Print ``table`` on stdout (stderr with ``err``): styled and fitted on a terminal, plain
    and unwrapped elsewhere."""
    target = Console(stderr=err)
    terminal = target.is_terminal
    if not terminal:
        for column in table.columns:
            column.no_wrap = True
    buffer = Console(
        file=io.StringIO(),
        width=target.width if terminal else _PIPE_WIDTH,
        force_terminal=terminal,
        color_system="auto" if terminal else None,
        highlight=False,
    )
    with buffer.capture() as captured:
        buffer.print(table)
    for line in captured.get().splitlines():
        click.echo(line.rstrip(), err=err)


def render_stock(view: Mapping[str, Any]) -> None:
    """Print a stock view (``GET /v1/stock/{sku}``): per location, then per channel what it may
    show now and what it was last sent, with when."""
    click.echo(f"{view['sku']}  (version {view['version']})")
    if "bundle" in view:
        parts = ", ".join(f"{c} x{n}" for c, n in view["bundle"]["components"].items())
        click.echo(f"bundle of: {parts}")
    if view["locations"]:
        locations = make_table(("location", *LOCATION_COLUMNS), right=LOCATION_COLUMNS)
        for location, states in view["locations"].items():
            locations.add_row(location, *(str(states[c]) for c in LOCATION_COLUMNS))
        echo_table(locations)
    click.echo()
    channels = make_table(
        ("channel", "available", "pushed", "pushed at"), right=("available", "pushed")
    )
    behind = False
    for channel, entry in view["channels"].items():
        pushed = entry.get("pushed")
        if pushed is None:
            channels.add_row(channel, str(entry["available"]), "-", "not pushed yet")
            continue
        behind = behind or pushed != entry["available"]
        channels.add_row(
            channel, str(entry["available"]), str(pushed), iso_time(entry.get("pushed_ms"))
        )
    echo_table(channels)
    click.echo(
        "available: what the channel may show now, after its policy; pushed: the last value the "
        "channel acknowledged, and when."
        + (" They differ while a push is on its way." if behind else "")
    )
