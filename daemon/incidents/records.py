"""The incident record as stored and answered (``ExceptionRecord``), its options, the body of a
resolve request, ids derived from the cause, and the queue's own error types."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from ...core.errors import Conflict, InvalidRequest, InvsyncError, NotFound
from .kinds import KINDS

__all__ = [
    "EXCEPTION_ERRORS",
    "ActionNotPossible",
    "AlreadyResolved",
    "ExceptionRecord",
    "Option",
    "ResolveRequest",
    "UnknownAction",
    "UnknownException",
    "decode_record",
    "encode_record",
    "exception_id",
]


# --- errors ------------------------------------------------------------------------------------


class UnknownException(NotFound):
    """No exception with this id."""

    code = "UNKNOWN_EXCEPTION"


class AlreadyResolved(Conflict):
    """The exception is resolved already (or being resolved right now)."""

    code = "ALREADY_RESOLVED"


class UnknownAction(InvalidRequest):
    """An action this kind of exception does not offer."""

    code = "UNKNOWN_ACTION"


class ActionNotPossible(Conflict):
    """The action is offered but cannot be applied now (e.g. no incoming stock to backorder)."""

    code = "ACTION_NOT_POSSIBLE"


#: Code -> type of the queue's own errors (the CLI's client maps answers back by code).
EXCEPTION_ERRORS: dict[str, type[InvsyncError]] = {
    cls.code: cls for cls in (UnknownException, AlreadyResolved, UnknownAction, ActionNotPossible)
}


# --- the record --------------------------------------------------------------------------------


class Option(msgspec.Struct, frozen=True, kw_only=True):
    """An action an operator may take, and what it does downstream."""

    action: str
    effect: str
    possible: bool = True
    why_not: str | None = None


class ExceptionRecord(msgspec.Struct, kw_only=True):
    """One exception as kept in ``exc:{<id>}`` (``doc``) and answered by the API."""

    id: str
    kind: str
    state: str = "open"
    summary: str
    channel: str | None = None
    order_id: str | None = None
    sku: str | None = None
    event_id: str | None = None
    details: dict[str, Any] = {}
    options: list[Option] = []
    created_ms: int
    updated_ms: int
    resolved_ms: int | None = None
    resolved_by: str | None = None
    action: str | None = None
    resolution: dict[str, Any] | None = None
    attempts: list[dict[str, Any]] = []


#: JSON bytes -> ExceptionRecord (validating); the record's ``doc`` field in its hash.
decode_record = msgspec.json.Decoder(ExceptionRecord).decode
#: Any record (or plain data) -> JSON bytes.
encode_record = msgspec.json.Encoder().encode


class ResolveRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/exceptions/{id}/resolve``. ``by`` is the caller's credential's name
    (daemon/security.py); given here, it must be that name (a check, not a choice)."""

    action: str
    by: str | None = None
    sku: str | None = None
    note: str | None = None


def exception_id(kind: str, *cause: str) -> str:
    """A short id derived from the kind and its cause (the same cause gives the same id)."""
    digest = hashlib.blake2b("\x1f".join((kind, *cause)).encode(), digest_size=5).hexdigest()
    return f"{KINDS[kind]}-{digest}"
