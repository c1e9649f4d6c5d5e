"""What every simulator reads from its channel's config: options and the secrets they name, and
which kinds the server can simulate."""

from __future__ import annotations

import random

import pytest

from invsync.core.config import Channel
from invsync.simulators.core import (
    MissingSecret,
    SimChannel,
    option_text,
    optional_secret,
    required_secret,
    secret_if_set,
)
from invsync.simulators.server import SIMULATOR_MODULES, make_sim_channel


def channel(**fields: object) -> Channel:
    return Channel(id="c1", kind="webhook", url="http://127.0.0.1:9/c1", **fields)  # type: ignore[arg-type]


def test_a_missing_secret_names_the_key_and_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SIM_UNSET", raising=False)
    monkeypatch.setenv("SIM_EMPTY", "")
    with pytest.raises(MissingSecret, match=r"channel 'c1': token_env: .*SIM_UNSET is not set"):
        required_secret(channel(token_env="SIM_UNSET"), "token_env")
    with pytest.raises(MissingSecret, match=r"options\.client_secret_env: .*SIM_EMPTY"):
        required_secret(
            channel(options={"client_secret_env": "SIM_EMPTY"}), "options.client_secret_env"
        )
    with pytest.raises(MissingSecret, match=r"secret_env: not configured"):
        required_secret(channel(), "secret_env")
    with pytest.raises(ValueError, match=r"options\.app_secret_env must name an environment"):
        required_secret(channel(options={"app_secret_env": 3}), "options.app_secret_env")


def test_optional_secrets_are_none_only_when_not_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIM_SET", "s3cret")
    monkeypatch.delenv("SIM_UNSET", raising=False)
    assert optional_secret(channel(), "secret_env") is None
    assert optional_secret(channel(secret_env="SIM_SET"), "secret_env") == "s3cret"
    with pytest.raises(MissingSecret, match="SIM_UNSET"):
        optional_secret(channel(secret_env="SIM_UNSET"), "secret_env")
    # Credentials the marketplace may not have issued yet: unset is simply none.
    assert secret_if_set(channel(token_env="SIM_UNSET"), "token_env") is None
    assert secret_if_set(channel(options={"refresh_env": "SIM_SET"}), "options.refresh_env") == (
        "s3cret"
    )


def test_a_required_option_is_named_when_missing() -> None:
    with_options = channel(options={"seller_id": "A1", "count": 7, "flag": True, "empty": ""})
    assert option_text(with_options, "seller_id") == "A1"
    assert option_text(with_options, "count") == "7"
    assert option_text(with_options, "absent", "DEFAULT") == "DEFAULT"
    for name in ("absent", "flag", "empty"):
        with pytest.raises(ValueError, match=rf"channel 'c1': options\.{name} is required"):
            option_text(with_options, name)


def test_every_simulated_kind_has_a_module_and_other_kinds_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIM_SET", "s3cret")
    receiver = make_sim_channel(channel(secret_env="SIM_SET"), rng=random.Random(1))
    assert receiver is not None and receiver.kind == "webhook"
    assert make_sim_channel(Channel(id="e", kind="edi846")) is None
    assert make_sim_channel(Channel(id="m", kind="mqtt")) is None
    for name in SIMULATOR_MODULES.values():
        module = __import__(f"invsync.simulators.{name}", fromlist=["create"])
        assert callable(module.create)


def test_a_run_numbers_its_orders_from_where_it_is_told() -> None:
    # `invsync simulate` starts each run's numbers from the clock, so a daemon that kept its
    # store never takes a new sale for an old one's redelivery.
    sim = SimChannel(channel(), rng=random.Random(1))
    sim.set_quantity("TEE", 10)
    first = sim.place_order()
    sim.number_orders_from(7_000_000_000)
    second, third = sim.place_order(), sim.place_order()
    assert first is not None and first.order_id == "1001"
    assert second is not None and second.order_id == "7000000000"
    assert third is not None and third.order_id == "7000000001"
