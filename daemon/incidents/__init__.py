"""Incidents: problems an operations team acts on, kept as records in Redis and resolved by
running an action for real. The API and CLI call them "exceptions" (``/v1/exceptions``,
``invsync exceptions``); they are not Python exceptions.

One job per module: ``kinds`` (the catalogue of kinds and actions), ``records`` (the record,
its ids and the queue's error types), ``rules`` (pure: backorder dates, shortfalls, outages),
``store`` (Redis keys, writes, indexes, listings), ``actions`` (running a resolution),
``queue`` (``ExceptionQueue``: raising, resolving, the periodic tick) and ``routes`` (HTTP).
"""

from __future__ import annotations

from .kinds import ACTIONS, KINDS, STATES
from .queue import ExceptionQueue
from .records import (
    EXCEPTION_ERRORS,
    ActionNotPossible,
    AlreadyResolved,
    ExceptionRecord,
    Option,
    UnknownAction,
    UnknownException,
    exception_id,
)
from .routes import exception_routes
from .rules import OutageTracker, backorder_eta

__all__ = [
    "ACTIONS",
    "EXCEPTION_ERRORS",
    "KINDS",
    "STATES",
    "ActionNotPossible",
    "AlreadyResolved",
    "ExceptionQueue",
    "ExceptionRecord",
    "Option",
    "OutageTracker",
    "UnknownAction",
    "UnknownException",
    "backorder_eta",
    "exception_id",
    "exception_routes",
]
