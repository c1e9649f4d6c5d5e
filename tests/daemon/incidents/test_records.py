"""Incident records: JSON round trip, ids derived from the cause, the catalogue's consistency."""

from __future__ import annotations

import msgspec

from invsync.daemon.incidents import ACTIONS, KINDS, ExceptionRecord, exception_id


def test_records_round_trip_as_json() -> None:
    record = ExceptionRecord(
        id="X", kind="drift", summary="s", created_ms=1, updated_ms=1, details={"a": 1}
    )
    assert msgspec.json.decode(msgspec.json.encode(record), type=ExceptionRecord) == record


def test_an_id_is_the_kinds_prefix_and_a_digest_of_the_cause() -> None:
    first = exception_id("push_refused", "shop", "TEE")
    assert first == exception_id("push_refused", "shop", "TEE")
    assert first.startswith("PRF-") and len(first) == len("PRF-") + 10
    assert exception_id("push_refused", "shop", "CAP") != first
    assert exception_id("drift", "shop", "TEE") != first


def test_every_kind_has_a_unique_prefix_and_offers_dismiss() -> None:
    assert set(ACTIONS) == set(KINDS)
    assert len(set(KINDS.values())) == len(KINDS)
    assert all("dismiss" in actions for actions in ACTIONS.values())
