"""The ``invsync`` command line (click): the daemon, config checks, operator stock commands, bench.

Operator stock commands talk to the running daemon through its HTTP API (``DaemonClient``), so
their changes flow to the channels like any other event; ``--direct`` (and ``stock import`` or
``stock show`` when no daemon answers) act on a stopped daemon's store instead.

Exit codes: 0 done; 1 the change was refused (conflict, unknown SKU) or the daemon or store is
unavailable; 2 bad usage, bad config or a malformed input file (nothing applied).

One module per command group: ``run`` (``run``, ``check-config``), ``stock``, ``holds``,
``exceptions``, ``channels``, ``simulate`` and ``bench``; what they share is in ``common``.
"""

from __future__ import annotations

import sys

import click

from .. import logs
from . import bench, channels, exceptions, holds, run, simulate, stock


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="invsync")
def main() -> None:
    """invsync: real-time omnichannel inventory sync."""
    logs.configure(level="warning", stream=sys.stderr)


for _command in (
    run.run,
    run.check_config,
    stock.stock,
    holds.holds,
    exceptions.exceptions,
    channels.channels,
    simulate.simulate,
    bench.bench,
):
    main.add_command(_command)

__all__ = ["main"]
