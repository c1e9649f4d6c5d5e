"""The catalogue of incidents: each kind, the prefix of its ids, the actions it offers with their
downstream effect, and the states a record goes through. Data only; the API calls a record an
"exception", and these kinds are its public contract (docs/api.md lists them)."""

from __future__ import annotations

__all__ = ["ACTIONS", "KINDS", "STATES"]

#: Kind -> the short prefix of its ids.
KINDS: dict[str, str] = {
    "oversold": "OVS",
    "unroutable": "UNR",
    "cancel_after_fulfilment": "CAF",
    "channel_unreachable": "CHU",
    "drift": "DRF",
    "unknown_sku": "SKU",
    "bad_event": "BAD",
    "push_refused": "PRF",
    "fulfillment_refused": "FUL",
}

#: Kind -> action -> its downstream effect (what the operator is offered).
ACTIONS: dict[str, dict[str, str]] = {
    "oversold": {
        "backorder": "keep the order open until the incoming units arrive (expected date recorded)",
        "reroute": "reserve the order again now, from any location that has the stock",
        "cancel": "cancel the order line; the channel must be told",
        "substitute": "reserve the order with another SKU in place of the missing one",
        "dismiss": "close the exception and change nothing",
    },
    "unroutable": {
        "reroute": "reserve the order again now, from any location that has the stock",
        "backorder": "keep the order open until the incoming units arrive (expected date recorded)",
        "cancel": "cancel the order line; the channel must be told",
        "substitute": "reserve the order with another SKU in place of the missing one",
        "dismiss": "close the exception and change nothing",
    },
    "unknown_sku": {
        "substitute": "reserve the order with a stocked SKU in place of the unknown one",
        "reroute": "try the reservation again (the SKU may be stocked by now)",
        "cancel": "cancel the order line; the channel must be told",
        "dismiss": "close the exception and change nothing",
    },
    "cancel_after_fulfilment": {
        "cancel": "release whatever is still reserved; the shipped units come back as a return",
        "dismiss": "keep the order as fulfilled; the cancellation is not applied",
    },
    "channel_unreachable": {
        "resync": "push every SKU's current value to the channel again",
        "dismiss": "close the exception (it also closes itself when the channel answers)",
    },
    "drift": {
        "push_ours": "send our availability to the channel again, over its quantity",
        "dismiss": "close the exception and change nothing",
    },
    "bad_event": {
        "dismiss": "close the exception; the event stays refused (send a corrected one)",
    },
    "push_refused": {
        "retry_push": (
            "send our current availability of the SKU to the channel again "
            "(once its listing is fixed on the channel)"
        ),
        "dismiss": (
            "close the exception; the channel keeps its quantity until the SKU's "
            "availability changes and is pushed again"
        ),
    },
}

ACTIONS["fulfillment_refused"] = {
    "resend": "send the location its part of the order again (once the cause is fixed there)",
    "dismiss": "close the exception; the location keeps the refusal (handle the order by hand)",
}

#: The states of a record: open until an operator resolves it or a policy / the system closes it.
STATES = ("open", "auto_resolved", "resolved")
