"""Every Prometheus metric of the spec ("Metrics": the names are part of the contract).

All of them live on one module-level ``REGISTRY`` (plus the process collector), which the
``/metrics`` endpoint exposes. Label values are bounded (channel ids, kinds, outcomes): never a
SKU or an order id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

__all__ = [
    "ACTORS_ACTIVE",
    "CHANNEL_BREAKER_OPEN",
    "CHANNEL_PENDING_SKUS",
    "CHANNEL_PUSHES",
    "CHANNEL_RESTARTS",
    "DRIFT",
    "EVENTS",
    "EXCEPTIONS_OPEN",
    "HOLDS",
    "INTAKE_LAG",
    "LATENCY_BUCKETS",
    "LISTING_REVISION_HOLDS",
    "MAILBOX_DEPTH",
    "ORDER_POLLS",
    "ORDER_POLL_OUTCOMES",
    "OVERSELLS",
    "PUSH_OUTCOMES",
    "REDIS_UP",
    "REGISTRY",
    "RESERVATION_LATENCY",
    "STORE_DOWN_SECONDS",
    "STORE_RESTARTS",
    "SYNC_LATENCY",
    "forget_channel",
    "touch_channel",
]

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

#: 1 ms .. 60 s: a reservation takes milliseconds, a push to a throttled channel seconds.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip

SYNC_LATENCY = Histogram(
    "invsync_sync_latency_seconds",
    "From an event's acceptance to the channel's acknowledgement of the change it caused.",
    ["channel"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
RESERVATION_LATENCY = Histogram(
    "invsync_reservation_latency_seconds",
    "From an order's acceptance to its reservation decided (reserved or rejected).",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
EVENTS = Counter(
    "invsync_events_total",
    "Events taken in, by type and outcome (applied, duplicate, rejected, ...).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
HOLDS = Counter(
    "invsync_holds_total",
    "Holds (checkout reservations, quotes) by outcome: placed, converted (into an order), "
    "released, expired (lapsed, released by the daemon), refused (not enough stock).",
    ["channel", "outcome"],
    registry=REGISTRY,
)
CHANNEL_PUSHES = Counter(
    "invsync_channel_pushes_total",
    "SKU updates pushed to a channel, by outcome (ok, throttled, retryable, permanent).",
    ["channel", "outcome"],
    registry=REGISTRY,
)
CHANNEL_RESTARTS = Counter(
    "invsync_channel_restarts_total",
    "Channel worker restarts after a crash (each restart runs a full sync).",
    ["channel"],
    registry=REGISTRY,
)
CHANNEL_PENDING_SKUS = Gauge(
    "invsync_channel_pending_skus",
    "SKUs whose latest value waits to be pushed to the channel.",
    ["channel"],
    registry=REGISTRY,
)
ACTORS_ACTIVE = Gauge(
    "invsync_actors_active",
    "Activated actors, by kind (sku, channel).",
    ["kind"],
    registry=REGISTRY,
)
MAILBOX_DEPTH = Gauge(
    "invsync_mailbox_depth",
    "Messages waiting in actor mailboxes, by actor kind.",
    ["kind"],
    registry=REGISTRY,
)
OVERSELLS = Counter(
    "invsync_oversells_total",
    "Orders that could not be reserved because the stock was already gone, by channel.",
    ["channel"],
    registry=REGISTRY,
)
EXCEPTIONS_OPEN = Gauge(
    "invsync_exceptions_open",
    "Unresolved exceptions in the queue, by kind.",
    ["kind"],
    registry=REGISTRY,
)
DRIFT = Counter(
    "invsync_drift_total",
    "Times a channel's quantity was found to differ from ours, by channel.",
    ["channel"],
    registry=REGISTRY,
)
CHANNEL_BREAKER_OPEN = Gauge(
    "invsync_channel_breaker_open",
    "1 while the channel's circuit breaker is open or probing (half-open), 0 when closed.",
    ["channel"],
    registry=REGISTRY,
)
INTAKE_LAG = Gauge(
    "invsync_intake_lag_seconds",
    "How far event intake is behind: age of the oldest accepted event not yet applied.",
    registry=REGISTRY,
)

ORDER_POLLS = Counter(
    "invsync_order_polls_total",
    "Polls of a channel's orders API (eBay getOrders), by outcome (ok, throttled, retryable, "
    "unauthorized, failed).",
    ["channel", "outcome"],
    registry=REGISTRY,
)
#: Every outcome of ``invsync_order_polls_total``.
ORDER_POLL_OUTCOMES = ("ok", "throttled", "retryable", "unauthorized", "failed")
LISTING_REVISION_HOLDS = Counter(
    "invsync_listing_revision_holds_total",
    "Quantity updates held back because a listing used up its revisions for the day (eBay: 250 "
    "per listing per day); they are pushed again after midnight UTC.",
    ["channel"],
    registry=REGISTRY,
)

REDIS_UP = Gauge(
    "invsync_redis_up",
    "1 when the store (Redis/Valkey) answered the daemon's last ping, 0 when it did not.",
    registry=REGISTRY,
)

STORE_RESTARTS = Counter(
    "invsync_store_restarts_total",
    "Times the daemon started its embedded Valkey again after it died.",
    registry=REGISTRY,
)

STORE_DOWN_SECONDS = Gauge(
    "invsync_store_down_seconds",
    "How long the store has been unreachable (0 while it answers).",
    registry=REGISTRY,
)

#: Every outcome of ``invsync_channel_pushes_total``.
PUSH_OUTCOMES = ("ok", "throttled", "retryable", "permanent")

_PER_CHANNEL: tuple[Counter | Gauge | Histogram, ...] = (
    SYNC_LATENCY,
    CHANNEL_PENDING_SKUS,
    CHANNEL_RESTARTS,
    CHANNEL_BREAKER_OPEN,
    OVERSELLS,
    DRIFT,
)


def touch_channel(channel: str) -> None:
    """Create every series of a configured channel at zero (idempotent, cheap).

    A counter series born at its first increment is invisible to ``increase()``/``rate()`` (no
    earlier sample), so without this the first oversell of a channel would not raise the alert.
    """
    for metric in _PER_CHANNEL:
        metric.labels(channel)
    for outcome in PUSH_OUTCOMES:
        CHANNEL_PUSHES.labels(channel, outcome)


def forget_channel(channel: str) -> None:
    """Drop every series of a channel removed from the config (SIGHUP), so it stops showing."""
    for metric in _PER_CHANNEL:
        try:
            metric.remove(channel)
        except KeyError:
            pass
    for outcome in PUSH_OUTCOMES:
        try:
            CHANNEL_PUSHES.remove(channel, outcome)
        except KeyError:
            pass
