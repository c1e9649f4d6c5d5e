"""What every fulfillment sender shares: the protocol and its two ways of failing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ...core.fulfillment_messages import Message

__all__ = ["MissingSecret", "Refused", "Sender", "Undelivered"]


class MissingSecret(ValueError):
    """A location's fulfillment names a secret variable that is unset or empty."""

    def __init__(self, location: str, key: str, env: str) -> None:
        self.location = location
        self.key = key
        self.env = env
        super().__init__(
            f"location '{location}': {key}: environment variable {env} is not set (or empty)"
        )


class Undelivered(Exception):
    """The location did not take the batch now (unreachable, 5xx, 429, timeout, a full disk):
    it is tried again after a backoff, ``retry_after_s`` when the location named a wait."""

    def __init__(self, reason: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class Refused(Exception):
    """The location refused a message for good (a 4xx answer): it is not sent again unless an
    operator resends it; ``status`` is the HTTP status when there was one."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class Sender(Protocol):
    """Delivers handoff messages to one location, in the order given.

    ``send`` returns when the location acknowledged every message of the batch; it raises
    ``Undelivered`` (nothing of the batch counts as delivered) or ``Refused`` (for a batch of
    one message: that message is refused). ``batch_size`` is the most messages one call takes.
    """

    batch_size: int

    async def send(self, messages: Sequence[Message]) -> None:
        """Deliver ``messages`` (at most ``batch_size``)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
