"""The fulfillment handoff's metrics (docs/metrics.md, "Fulfillment"), on the shared registry.

Labels are bounded: location ids, message types and outcomes, never an order id.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from .definitions import LATENCY_BUCKETS, REGISTRY

__all__ = [
    "FULFILLMENT_ACK_LATENCY",
    "FULFILLMENT_MESSAGES",
    "FULFILLMENT_OUTBOX",
    "FULFILLMENT_SHIPMENTS",
    "MESSAGE_OUTCOMES",
    "touch_location",
]

#: queued: written to the outbox; acknowledged: the location took it (2xx, PUBACK, file
#: written); refused: the location said no for good (4xx); retried: a failed attempt.
MESSAGE_OUTCOMES = ("queued", "acknowledged", "refused", "retried")
_TYPES = ("fulfillment.requested", "fulfillment.cancelled")

FULFILLMENT_MESSAGES = Counter(
    "invsync_fulfillment_messages_total",
    "Handoff messages to fulfillment locations, by type and outcome.",
    ["location", "type", "outcome"],
    registry=REGISTRY,
)
FULFILLMENT_ACK_LATENCY = Histogram(
    "invsync_fulfillment_ack_seconds",
    "From a handoff message queued to the location's acknowledgement of it.",
    ["location"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
FULFILLMENT_OUTBOX = Gauge(
    "invsync_fulfillment_outbox",
    "Handoff messages waiting in a location's outbox (queued, not yet acknowledged).",
    ["location"],
    registry=REGISTRY,
)
FULFILLMENT_SHIPMENTS = Counter(
    "invsync_fulfillment_shipments_total",
    "Shipment reports from locations (945 files, signed shipment webhooks), by outcome.",
    ["location", "outcome"],
    registry=REGISTRY,
)


def touch_location(location: str) -> None:
    """Create a handoff location's series at zero, so ``rate()`` sees their first increase."""
    for kind in _TYPES:
        for outcome in MESSAGE_OUTCOMES:
            FULFILLMENT_MESSAGES.labels(location, kind, outcome)
    FULFILLMENT_OUTBOX.labels(location)
    for outcome in ("recorded", "rejected"):
        FULFILLMENT_SHIPMENTS.labels(location, outcome)
