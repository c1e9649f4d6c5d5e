"""structlog set-up: JSON lines for the service and log shippers, readable lines for a person.

``[logging] format`` (or ``invsync run --log-format``) chooses: ``"json"`` (one object a line,
what journald, Loki or a test that parses the daemon's stdout reads), ``"console"`` (structlog's
``ConsoleRenderer``: time, level, event, key=value) or ``"auto"``, the default: console when the
stream is a terminal, JSON otherwise. So ``make run`` in a terminal reads as text, while the
same daemon under systemd, piped to a file or started by a test writes JSON.

On the console the ``live_page`` event (daemon/security.py: where the page is, with the one-time
sign-in link in a terminal) is written as one plain sentence rather than key=value, so the line
an operator looks for at start-up stands out.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from ..core.config import LogFormat

__all__ = ["LOG_FORMATS", "LogFormat", "configure", "headline", "wants_console"]

#: The values of ``[logging] format`` and ``--log-format``.
LOG_FORMATS: tuple[LogFormat, ...] = ("auto", "console", "json")


def wants_console(format: LogFormat, stream: TextIO) -> bool:
    """Whether ``format`` means console lines on ``stream`` (``auto``: when it is a terminal)."""
    if format == "auto":
        isatty = getattr(stream, "isatty", None)
        return bool(isatty and isatty())
    return format == "console"


def headline(event_dict: MutableMapping[str, Any]) -> str | None:
    """The one-sentence form of a start-up event on the console, or None for other events."""
    if event_dict.get("event") != "live_page":
        return None
    url = event_dict.get("url", "")
    if event_dict.get("note"):  # a terminal: the link carries the token
        return f"invsync is running: open {url} (this link signs your browser in)"
    if event_dict.get("sign_in"):  # the token stays out of the log: say where it is
        return f"invsync is running: live page at {url} ({event_dict['sign_in']})"
    return f"invsync is running: live page at {url}"


class _ConsoleLines:
    """The console renderer, with start-up events as plain sentences."""

    def __init__(self, *, colors: bool) -> None:
        self._render = structlog.dev.ConsoleRenderer(colors=colors)

    def __call__(self, logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> str:
        line = headline(event_dict)
        if line is not None:
            return line
        return self._render(logger, name, event_dict)


def configure(
    *, format: LogFormat = "auto", level: str = "info", stream: TextIO | None = None
) -> bool:
    """Route structlog to ``stream`` (stdout) in ``format``; returns True for console lines.

    The daemon logs on stdout; operator commands log warnings to stderr so their stdout stays
    clean for ``--json`` output. Colours only on a terminal, and never with ``$NO_COLOR``.
    """
    stream = stream or sys.stdout
    console = wants_console(format, stream)
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
    ]
    if console:
        colors = wants_console("auto", stream) and "NO_COLOR" not in os.environ
        processors += [
            # Seconds are enough for a person; the zone is always said (Z: UTC).
            structlog.processors.TimeStamper(fmt="%Y-%m-%dT%H:%M:%SZ", utc=True),
            _ConsoleLines(colors=colors),  # renders exceptions itself (readable tracebacks)
        ]
    else:
        processors += [
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    return console
