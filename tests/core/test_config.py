"""Config loading: the shipped file loads, defaults hold, and every mistake names its key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import msgspec
import pytest

from invsync.core.config import (
    Config,
    ConfigError,
    EnvName,
    Port,
    check_channel_options,
    decode_options,
    load_config,
    resolve_secret,
)
from invsync.engine.availability import Bundle, ChannelPolicy

REPO = Path(__file__).resolve().parents[2]

# The smallest valid config: one location.
MINIMAL = '[[locations]]\nid = "wh-east"\n'

TWO_LOCATIONS = """
[[locations]]
id = "wh-east"
[[locations]]
id = "wh-west"
"""


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str) -> Config:
    return load_config(write(tmp_path, text))


# --- the shipped config -------------------------------------------------------------------------


def test_shipped_config_loads() -> None:
    config = load_config(REPO / "config.toml")
    assert config.source == REPO / "config.toml"
    assert config.redis.url is None
    assert config.redis_data_dir == REPO / "data"
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8080)
    assert config.location_ids() == ["wh-east", "wh-west", "store-sf"]
    assert {loc.id: loc.safety_stock for loc in config.locations}["store-sf"] == 1
    assert [ch.id for ch in config.channels] == [
        "shopify",
        "amazon",
        "ebay",
        "walmart",
        "tiktok",
        "wholesale",
        "retail-edi",
    ]
    by_id = {ch.id: ch for ch in config.channels}
    wholesale = by_id["wholesale"]
    assert wholesale.kind == "webhook"
    assert wholesale.url == "http://127.0.0.1:8090/webhooks/wholesale"
    assert wholesale.secret_env == "INVSYNC_WHOLESALE_SECRET"
    for ch in config.channels[:5]:
        assert ch.url == f"http://127.0.0.1:8090/{ch.kind}"
    edi = by_id["retail-edi"]
    assert (edi.kind, edi.url, edi.options["folder"]) == ("edi846", None, "edi/outbox")
    assert (config.simulator.host, config.simulator.port) == ("127.0.0.1", 8090)
    assert config.simulator.orders_per_minute > 0
    assert config.bundle_map()["KIT-TEE-CAP"].components == {"TEE-BLK-M": 1, "CAP-RED": 1}


def test_the_example_in_the_docs_loads(tmp_path: Path) -> None:
    docs = (REPO / "docs" / "configuration.md").read_text()
    example = docs.split("## Example", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    config = load(tmp_path, example)
    assert set(config.policies()) == {"shopify", "wholesale"}


# --- defaults -----------------------------------------------------------------------------------


def test_defaults_of_a_minimal_config(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL + '[[channels]]\nid = "shop"\nkind = "shopify"\n')
    assert config.redis.url is None
    assert config.redis.data_dir == tmp_path / "data"
    assert config.redis.idempotency_ttl_s == 72 * 3600
    assert (config.redis.connect_timeout_s, config.redis.op_timeout_s) == (2.0, 5.0)
    assert (config.server.host, config.server.port, config.server.token_env) == (
        "127.0.0.1",
        8080,
        None,
    )
    assert (config.mqtt.url, config.mqtt.prefix, config.mqtt.client_id) == (
        None,
        "invsync/",
        "invsync",
    )
    assert config.metrics.port is None
    loc = config.locations[0]
    assert (loc.name, loc.kind, loc.priority, loc.safety_stock) == (None, "warehouse", 100, 0)
    ch = config.channels[0]
    assert ch.enabled and ch.locations is None
    assert (ch.buffer, ch.percent, ch.cap, ch.floor) == (0, 100, None, 0)
    assert (ch.rate_limit_per_s, ch.burst, ch.batch_size) == (10.0, None, 50)
    assert ch.effective_burst() == 10
    assert (ch.url, ch.token_env, ch.secret_env, ch.sla_days, ch.options) == (
        None,
        None,
        None,
        None,
        {},
    )
    assert config.bundles == ()
    assert config.routing.default_strategy == "sla_cost"
    assert config.routing.strategies == {} and config.routing.zones == {}
    assert (config.routing.default_zone, config.routing.fallback) == ("default", "late")
    assert (loc.transit_days, loc.ship_cost, loc.serves) == ({}, {}, None)
    assert config.exceptions.auto_resolve == {}


def test_burst_defaults_to_one_second_of_rate(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        MINIMAL
        + '[[channels]]\nid = "a"\nkind = "ebay"\nrate_limit_per_s = 0.5\n'
        + '[[channels]]\nid = "b"\nkind = "ebay"\nrate_limit_per_s = 2.5\n'
        + '[[channels]]\nid = "c"\nkind = "ebay"\nburst = 7\n',
    )
    assert [ch.effective_burst() for ch in config.channels] == [1, 3, 7]


def test_options_keep_their_toml_types(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        MINIMAL + '[[channels]]\nid = "s"\nkind = "shopify"\n'
        'options = { shop = "demo", api_version = 2024, ratio = 0.5, graphql = true }\n',
    )
    assert config.channels[0].options == {
        "shop": "demo",
        "api_version": 2024,
        "ratio": 0.5,
        "graphql": True,
    }


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL)
    with pytest.raises(AttributeError):
        config.server = config.server  # type: ignore[misc]


# --- paths and the config location --------------------------------------------------------------


def test_relative_data_dir_resolves_against_the_config_folder_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc" / "invsync"
    folder.mkdir(parents=True)
    path = write(folder, '[redis]\ndata_dir = "state/valkey"\n' + MINIMAL)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(path)
    assert config.redis_data_dir == folder / "state" / "valkey"
    assert config.source == path
    assert config.resolve_path("out/edi") == folder / "out" / "edi"


def test_relative_config_path_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, MINIMAL, "site.toml")
    monkeypatch.chdir(tmp_path)
    config = load_config("site.toml")
    assert config.source == tmp_path / "site.toml"
    assert config.redis_data_dir == tmp_path / "data"


def test_absolute_data_dir_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "var" / "lib" / "invsync"
    config = load(tmp_path, f'[redis]\ndata_dir = "{target}"\n' + MINIMAL)
    assert config.redis_data_dir == target


def test_invsync_config_env_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[server]\nport = 9999\n" + MINIMAL, "from-env.toml")
    monkeypatch.setenv("INVSYNC_CONFIG", str(path))
    monkeypatch.chdir(tmp_path)  # where a ./config.toml would be looked for, and isn't
    assert load_config().server.port == 9999


def test_without_env_the_default_is_config_toml_in_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "[server]\nport = 8123\n" + MINIMAL)
    monkeypatch.delenv("INVSYNC_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert load_config().server.port == 8123


def test_an_explicit_path_wins_over_the_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INVSYNC_CONFIG", str(tmp_path / "missing.toml"))
    assert load(tmp_path, MINIMAL).locations[0].id == "wh-east"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    assert info.value.key is None
    assert str(info.value) == f"{tmp_path / 'nope.toml'}: no such file"


def test_missing_default_file_says_how_to_name_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INVSYNC_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config()
    assert str(info.value) == "config.toml: no such file (pass -c FILE or set $INVSYNC_CONFIG)"


# --- TOML syntax and schema errors --------------------------------------------------------------


def test_toml_syntax_error_reports_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[server]\nport = \n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert (err.key, err.line, err.column) == (None, 4, 8)
    assert str(err) == f"{path}: line 4, column 8: invalid TOML: Invalid value"


def test_toml_error_at_end_of_document_still_has_a_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, MINIMAL + 'name = "unclosed')
    assert info.value.line == 3


def test_str_reads_file_key_message(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '[[channels]]\nid = "e"\nkind = "ebay"\npercent = 140\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: channels[0].percent: must be between 0 and 100, got 140"


def test_str_shows_the_path_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, '[[locations]]\nid = "a"\nprioriy = 1\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config("config.toml")
    assert str(info.value) == (
        "config.toml: locations[0].prioriy: unknown key (did you mean 'priority'?)"
    )


CHANNEL = '[[channels]]\nid = "c"\nkind = "ebay"\n'

SCHEMA_ERRORS = [
    pytest.param(
        MINIMAL + "[server]\nprot = 1\n",
        "server.prot",
        "unknown key (did you mean 'port'?)",
        id="unknown-key-with-suggestion",
    ),
    pytest.param(
        MINIMAL + "[redis]\nzzz = 1\n",
        "redis.zzz",
        "unknown key (known: url, password_env, data_dir, idempotency_ttl_s, "
        "connect_timeout_s, op_timeout_s, event_attempts, unreachable_exit_s)",
        id="unknown-key-lists-known",
    ),
    pytest.param(
        "chanels = []\n" + MINIMAL,
        "chanels",
        "unknown key (did you mean 'channels'?)",
        id="unknown-section",
    ),
    pytest.param(
        'source = "x"\n' + MINIMAL, "source", "unknown key", id="source-is-not-a-file-key"
    ),
    pytest.param(
        '[[locations]]\nname = "East"\n',
        "locations[0].id",
        "required key is missing",
        id="missing-id",
    ),
    pytest.param(
        MINIMAL + '[[channels]]\nid = "c"\n',
        "channels[0].kind",
        "required key is missing",
        id="missing-kind",
    ),
    pytest.param(
        MINIMAL + '[server]\nport = "80"\n',
        "server.port",
        "expected an integer, got a string ('80')",
        id="wrong-type",
    ),
    pytest.param(
        MINIMAL + "[server]\nport = true\n",
        "server.port",
        "expected an integer, got a boolean (true)",
        id="bool-is-not-int",
    ),
    pytest.param(
        MINIMAL + '[[locations]]\nid = "b"\nname = 1979-05-27\n',
        "locations[1].name",
        "expected a string, got a date",
        id="date",
    ),
    pytest.param(
        MINIMAL + '[[channels]]\nid = "c"\nkind = "etsy"\n',
        "channels[0].kind",
        "must be one of 'shopify', 'amazon', 'ebay', 'walmart', 'tiktok', 'webhook', "
        "'edi846', 'mqtt', 'pos', got 'etsy'",
        id="unknown-channel-kind",
    ),
    pytest.param(
        '[[locations]]\nid = "a"\nkind = "depot"\n',
        "locations[0].kind",
        "must be one of 'warehouse', 'store', '3pl', got 'depot'",
        id="unknown-location-kind",
    ),
    pytest.param(
        MINIMAL + CHANNEL + "options = { shop = [1] }\n",
        "channels[0].options.shop[0]",
        "expected a string or a table, got an integer (1)",
        id="option-value-type",
    ),
    pytest.param(
        MINIMAL + '[[bundles]]\nsku = "K"\ncomponents = { "TEE.M" = "one" }\n',
        'bundles[0].components."TEE.M"',
        "expected an integer, got a string ('one')",
        id="component-units-type-quoted-key",
    ),
    pytest.param(
        "locations = {}\n", "locations", "expected an array, got a table", id="table-not-array"
    ),
    pytest.param(
        "[redis]\ndata_dir = 5\n" + MINIMAL,
        "redis.data_dir",
        "expected a path (a non-empty string), got 5",
        id="path-type",
    ),
]


@pytest.mark.parametrize(("text", "key", "message"), SCHEMA_ERRORS)
def test_schema_errors_name_the_key(tmp_path: Path, text: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert (info.value.key, info.value.message) == (key, message)


# --- constraints of one key: the schema's types -------------------------------------------------

# What a pattern accepts, as the errors say it (the Meta descriptions of core/ids.py and config).
ID_RULE = "must be an id: 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
SKU_RULE = "must be a SKU: 1 to 128 characters, without braces, spaces or control characters"
ENV_RULE = "must be the name of an environment variable (like SHOPIFY_TOKEN), not the secret itself"
REGION_RULE = 'must be a country code or country-region, like "US" or "US-CA"'

CONSTRAINT_ERRORS = [
    pytest.param(
        '[[locations]]\nid = "wh:east"\n',
        "locations[0].id",
        ID_RULE + ", got 'wh:east'",
        id="colon-in-location-id",
    ),
    pytest.param(
        '[[locations]]\nid = "{a}"\n',
        "locations[0].id",
        ID_RULE + ", got '{a}'",
        id="brace-in-id",
    ),
    pytest.param(
        '[[locations]]\nid = "-a"\n',
        "locations[0].id",
        ID_RULE + ", got '-a'",
        id="id-starts-with-punctuation",
    ),
    pytest.param(
        '[[locations]]\nid = "a"\nsafety_stock = -1\n',
        "locations[0].safety_stock",
        "must be >= 0, got -1",
        id="negative-safety-stock",
    ),
    pytest.param(
        MINIMAL + '[[channels]]\nid = "c d"\nkind = "ebay"\n',
        "channels[0].id",
        ID_RULE + ", got 'c d'",
        id="bad-channel-id",
    ),
    pytest.param(
        MINIMAL + CHANNEL + "locations = []\n",
        "channels[0].locations",
        "must not be empty",
        id="empty-locations",
    ),
    pytest.param(
        MINIMAL + CHANNEL + "percent = 140\n",
        "channels[0].percent",
        "must be between 0 and 100, got 140",
        id="percent-over-100",
    ),
    pytest.param(
        MINIMAL + CHANNEL + "percent = -1\n",
        "channels[0].percent",
        "must be between 0 and 100, got -1",
        id="percent-negative",
    ),
    pytest.param(
        MINIMAL + CHANNEL + "buffer = -2\n",
        "channels[0].buffer",
        "must be >= 0, got -2",
        id="negative-buffer",
    ),
    pytest.param(
        MINIMAL + CHANNEL + "floor = -1\n",
        "channels[0].floor",
        "must be >= 0, got -1",
        id="negative-floor",
    ),
    pytest.param(
        MINIMAL + CHANNEL + "cap = -1\n",
        "channels[0].cap",
        "must be >= 0, got -1",
        id="negative-cap",
    ),
    pytest.param(
        MINIMAL + CHANNEL + "rate_limit_per_s = 0\n",
        "channels[0].rate_limit_per_s",
        "must be a finite number > 0, got 0",
        id="zero-rate",
    ),
    pytest.param(
        MINIMAL + CHANNEL + "rate_limit_per_s = inf\n",
        "channels[0].rate_limit_per_s",
        "must be a finite number > 0, got inf",
        id="infinite-rate",
    ),
    pytest.param(
        MINIMAL + CHANNEL + "burst = 0\n",
        "channels[0].burst",
        "must be >= 1, got 0",
        id="zero-burst",
    ),
    pytest.param(
        MINIMAL + CHANNEL + "batch_size = 1001\n",
        "channels[0].batch_size",
        "must be between 1 and 1000, got 1001",
        id="batch-too-big",
    ),
    pytest.param(
        MINIMAL + CHANNEL + "batch_size = 0\n",
        "channels[0].batch_size",
        "must be between 1 and 1000, got 0",
        id="batch-zero",
    ),
    pytest.param(
        MINIMAL + CHANNEL + "sla_days = -1\n",
        "channels[0].sla_days",
        "must be >= 0, got -1",
        id="negative-sla",
    ),
    pytest.param(
        MINIMAL + CHANNEL + 'token_env = "shpat_0123456789abcdef"\n',
        "channels[0].token_env",
        ENV_RULE,
        id="secret-pasted-into-token-env",
    ),
    pytest.param(
        MINIMAL + CHANNEL + 'secret_env = "s3cr3t!"\n',
        "channels[0].secret_env",
        ENV_RULE,
        id="secret-pasted-into-secret-env",
    ),
    pytest.param(
        MINIMAL + '[server]\ntoken_env = "abc"\n',
        "server.token_env",
        ENV_RULE,
        id="lowercase-server-token-env",
    ),
    pytest.param(
        MINIMAL + '[mqtt]\npassword_env = "hunter2"\n',
        "mqtt.password_env",
        ENV_RULE,
        id="mqtt-password-env",
    ),
    pytest.param(
        MINIMAL + "[redis]\nidempotency_ttl_s = 0\n",
        "redis.idempotency_ttl_s",
        "must be >= 1, got 0",
        id="zero-ttl",
    ),
    pytest.param(
        MINIMAL + "[redis]\nconnect_timeout_s = -1.5\n",
        "redis.connect_timeout_s",
        "must be a finite number > 0, got -1.5",
        id="negative-timeout",
    ),
    pytest.param(
        MINIMAL + "[server]\nport = 70000\n",
        "server.port",
        "must be between 1 and 65535, got 70000",
        id="server-port-range",
    ),
    pytest.param(
        MINIMAL + "[metrics]\nport = 0\n",
        "metrics.port",
        "must be between 1 and 65535, got 0",
        id="metrics-port-range",
    ),
    pytest.param(
        MINIMAL + '[mqtt]\nprefix = "invsync"\n',
        "mqtt.prefix",
        "must be a topic prefix ending with '/', without '+' or '#', got 'invsync'",
        id="mqtt-prefix-slash",
    ),
    pytest.param(
        MINIMAL + '[[bundles]]\nsku = "K"\ncomponents = {}\n',
        "bundles[0].components",
        "must not be empty",
        id="empty-bundle",
    ),
    pytest.param(
        MINIMAL + '[[bundles]]\nsku = "K"\ncomponents = { A = 0 }\n',
        "bundles[0].components.A",
        "must be >= 1, got 0",
        id="zero-units",
    ),
    pytest.param(
        MINIMAL + '[[bundles]]\nsku = ""\ncomponents = { A = 1 }\n',
        "bundles[0].sku",
        SKU_RULE + ", got ''",
        id="empty-bundle-sku",
    ),
    pytest.param(
        MINIMAL + '[[bundles]]\nsku = "K{1}"\ncomponents = { A = 1 }\n',
        "bundles[0].sku",
        SKU_RULE + ", got 'K{1}'",
        id="hash-tag-in-bundle-sku",
    ),
    pytest.param(
        MINIMAL + '[[bundles]]\nsku = "K"\ncomponents = { "A}" = 1 }\n',
        'bundles[0].components."A}"',
        SKU_RULE + ", got 'A}'",
        id="hash-tag-in-component",
    ),
    pytest.param(
        MINIMAL + '[routing]\ndefault_strategy = ""\n',
        "routing.default_strategy",
        "must be one of 'sla_cost', 'priority', got ''",
        id="empty-default-strategy",
    ),
    pytest.param(
        MINIMAL + CHANNEL + '[routing]\nstrategies = { c = "cheapest" }\n',
        "routing.strategies.c",
        "must be one of 'sla_cost', 'priority', got 'cheapest'",
        id="unknown-strategy",
    ),
    pytest.param(
        MINIMAL + '[routing]\nfallback = "drop"\n',
        "routing.fallback",
        "must be one of 'late', 'unroutable', got 'drop'",
        id="unknown-fallback",
    ),
    pytest.param(
        MINIMAL + '[routing]\nzones = { "California" = "west" }\n',
        "routing.zones.California",
        REGION_RULE + ", got 'California'",
        id="zone-key-not-a-region",
    ),
    pytest.param(
        MINIMAL + '[routing]\nzones = { US = "" }\n',
        "routing.zones.US",
        "must not be empty",
        id="empty-zone-name",
    ),
    pytest.param(
        MINIMAL + '[routing]\ndefault_zone = ""\n',
        "routing.default_zone",
        "must not be empty",
        id="empty-default-zone",
    ),
    pytest.param(
        MINIMAL + "transit_days = { default = -1 }\n",
        "locations[0].transit_days.default",
        "must be >= 0, got -1",
        id="negative-transit-days",
    ),
    pytest.param(
        MINIMAL + "ship_cost = { default = -0.5 }\n",
        "locations[0].ship_cost.default",
        "must be a finite number >= 0, got -0.5",
        id="negative-ship-cost",
    ),
    pytest.param(
        MINIMAL + "ship_cost = { default = nan }\n",
        "locations[0].ship_cost.default",
        "must be a finite number >= 0, got nan",
        id="nan-ship-cost",
    ),
    pytest.param(
        MINIMAL + '[server]\nhost = ""\n', "server.host", "must not be empty", id="empty-host"
    ),
    pytest.param(
        MINIMAL + '[mqtt]\nclient_id = ""\n',
        "mqtt.client_id",
        "must not be empty",
        id="empty-mqtt-client-id",
    ),
    pytest.param(
        MINIMAL + "[redis]\nop_timeout_s = inf\n",
        "redis.op_timeout_s",
        "must be a finite number > 0, got inf",
        id="infinite-timeout",
    ),
    pytest.param(
        MINIMAL + 'ship_cost = { "a.b" = inf }\n',
        'locations[0].ship_cost."a.b"',
        "must be a finite number >= 0, got inf",
        id="infinite-ship-cost-quoted-zone",
    ),
    pytest.param(
        MINIMAL + '[routing]\nzones = { "Cal ifornia" = "west" }\n',
        'routing.zones."Cal ifornia"',
        REGION_RULE + ", got 'Cal ifornia'",
        id="zone-key-quoted",
    ),
    pytest.param(
        MINIMAL + "[simulator]\nport = 0\n",
        "simulator.port",
        "must be between 1 and 65535, got 0",
        id="simulator-port-range",
    ),
    pytest.param(
        MINIMAL + "[simulator]\norders_per_minute = 60001\n",
        "simulator.orders_per_minute",
        "must be between 0 and 60000, got 60001",
        id="too-many-orders",
    ),
    pytest.param(
        MINIMAL + "[simulator.faults]\nerror_rate = 1.5\n",
        "simulator.faults.error_rate",
        "must be between 0 and 1, got 1.5",
        id="fault-rate-over-1",
    ),
    pytest.param(
        MINIMAL + "[simulator.faults]\nlatency_ms = -1\n",
        "simulator.faults.latency_ms",
        "must be between 0 and 60000, got -1",
        id="negative-latency",
    ),
    pytest.param(
        MINIMAL + CHANNEL + "[simulator.channel_faults.c]\ntimeout_s = 0\n",
        "simulator.channel_faults.c.timeout_s",
        "must be > 0 and <= 600, got 0",
        id="channel-fault-timeout-zero",
    ),
    pytest.param(
        MINIMAL + "[exceptions]\nbackorder_within_days = 3651\n",
        "exceptions.backorder_within_days",
        "must be between 0 and 3650, got 3651",
        id="backorder-horizon-too-long",
    ),
    pytest.param(
        MINIMAL + "[exceptions]\nincoming_lead_days = -1\n",
        "exceptions.incoming_lead_days",
        "must be between 0 and 3650, got -1",
        id="negative-lead-days",
    ),
    pytest.param(
        MINIMAL + "[exceptions]\nincoming_lead_days = 1.5\n",
        "exceptions.incoming_lead_days",
        "expected an integer, got a number (1.5)",
        id="fractional-lead-days",
    ),
    pytest.param(
        MINIMAL + "[exceptions]\nunreachable_after_s = 0\n",
        "exceptions.unreachable_after_s",
        "must be > 0 and <= 86400, got 0",
        id="zero-unreachable-after",
    ),
    pytest.param(
        MINIMAL + "[exceptions]\ndrift_check_s = 86401\n",
        "exceptions.drift_check_s",
        "must be between 0 and 86400, got 86401",
        id="drift-check-over-a-day",
    ),
    pytest.param(
        MINIMAL + "[exceptions]\ndrift_confirm_s = 3601\n",
        "exceptions.drift_confirm_s",
        "must be between 0 and 3600, got 3601",
        id="drift-confirm-over-an-hour",
    ),
    pytest.param(
        MINIMAL + "[exceptions]\ndrift_settle_s = -1\n",
        "exceptions.drift_settle_s",
        "must be between 0 and 86400, got -1",
        id="negative-drift-settle",
    ),
]


@pytest.mark.parametrize(("text", "key", "message"), CONSTRAINT_ERRORS)
def test_constraint_errors_name_the_key_in_plain_words(
    tmp_path: Path, text: str, key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert (info.value.key, info.value.message) == (key, message)


# --- rules between keys -------------------------------------------------------------------------

RULE_ERRORS = [
    pytest.param(
        "",
        "locations",
        "at least one [[locations]] entry is required",
        id="no-location",
    ),
    pytest.param(
        TWO_LOCATIONS + '[[locations]]\nid = "wh-east"\n',
        "locations[2].id",
        "duplicate location id 'wh-east' (first at locations[0])",
        id="duplicate-location",
    ),
    pytest.param(
        MINIMAL + CHANNEL + CHANNEL,
        "channels[1].id",
        "duplicate channel id 'c' (first at channels[0])",
        id="duplicate-channel",
    ),
    pytest.param(
        TWO_LOCATIONS + CHANNEL + '[[channels]]\nid = "d"\nkind = "ebay"\nlocations = ["wh-x"]\n',
        "channels[1].locations[0]",
        "unknown location 'wh-x' (known: wh-east, wh-west)",
        id="unknown-location",
    ),
    pytest.param(
        TWO_LOCATIONS + CHANNEL + 'locations = ["wh-east", "wh-east"]\n',
        "channels[0].locations[1]",
        "location 'wh-east' is listed twice",
        id="location-listed-twice",
    ),
    pytest.param(
        MINIMAL + '[[channels]]\nid = "w"\nkind = "webhook"\nsecret_env = "W_SECRET"\n',
        "channels[0].url",
        "required for kind 'webhook' (where updates are POSTed)",
        id="webhook-needs-url",
    ),
    pytest.param(
        MINIMAL + '[[channels]]\nid = "w"\nkind = "webhook"\nurl = "https://b2b.example/in"\n',
        "channels[0].secret_env",
        "required for kind 'webhook' (the HMAC signing secret)",
        id="webhook-needs-secret",
    ),
    pytest.param(
        MINIMAL + '[[channels]]\nid = "w"\nkind = "webhook"\nurl = "ftp://b2b.example/in"\n'
        'secret_env = "W"\n',
        "channels[0].url",
        "must be a URL starting with http:// or https://, got 'ftp://b2b.example/in'",
        id="webhook-url-scheme",
    ),
    pytest.param(
        MINIMAL + CHANNEL + 'url = "api.ebay.com"\n',
        "channels[0].url",
        "must be a URL starting with scheme://, got 'api.ebay.com'",
        id="url-without-scheme",
    ),
    pytest.param(
        MINIMAL + '[redis]\nurl = "redis://:hunter2@redis:6379/0"\n',
        "redis.url",
        "must not contain a password; put the name of a variable holding it in "
        "redis.password_env instead",
        id="password-in-redis-url",
    ),
    pytest.param(
        MINIMAL + '[redis]\nurl = "http://redis:6379"\n',
        "redis.url",
        "must be a URL starting with redis:// or rediss:// or unix:// or valkey:// or "
        "valkeys://, got 'http://redis:6379'",
        id="redis-url-scheme",
    ),
    pytest.param(
        MINIMAL + "[metrics]\nport = 8080\n",
        "metrics.port",
        "same as server.port (8080); leave it out to serve /metrics there",
        id="metrics-port-clash",
    ),
    pytest.param(
        MINIMAL + '[mqtt]\nurl = "tcp://broker"\n',
        "mqtt.url",
        "must be a URL starting with mqtt:// or mqtts:// or ws:// or wss://, got 'tcp://broker'",
        id="mqtt-url-scheme",
    ),
    pytest.param(
        MINIMAL + '[[channels]]\nid = "pos"\nkind = "mqtt"\n',
        "channels[0].url",
        "kind 'mqtt' needs [mqtt] url or an mqtt://, mqtts://, ws:// or wss:// url of its own",
        id="mqtt-channel-needs-broker",
    ),
    pytest.param(
        MINIMAL + '[[channels]]\nid = "till"\nkind = "pos"\nurl = "https://pos.example"\n',
        "channels[0].url",
        "kind 'pos' needs [mqtt] url or an mqtt://, mqtts://, ws:// or wss:// url of its own",
        id="pos-channel-needs-broker",
    ),
    pytest.param(
        MINIMAL + '[[bundles]]\nsku = "K"\ncomponents = { A = 1 }\n'
        '[[bundles]]\nsku = "K"\ncomponents = { B = 1 }\n',
        "bundles[1].sku",
        "duplicate bundle sku 'K' (first at bundles[0])",
        id="duplicate-bundle",
    ),
    pytest.param(
        MINIMAL + '[[bundles]]\nsku = "K"\ncomponents = { K = 1 }\n',
        "bundles[0].components.K",
        "a bundle cannot contain itself",
        id="bundle-contains-itself",
    ),
    pytest.param(
        MINIMAL + '[[bundles]]\nsku = "K1"\ncomponents = { A = 1 }\n'
        '[[bundles]]\nsku = "K2"\ncomponents = { K1 = 2, B = 1 }\n',
        "bundles[1].components.K1",
        "'K1' is itself a bundle; list its components instead",
        id="nested-bundle",
    ),
    pytest.param(
        MINIMAL + CHANNEL + '[routing]\nstrategies = { shopify = "priority" }\n',
        "routing.strategies.shopify",
        "unknown channel 'shopify' (known: c)",
        id="strategy-for-unknown-channel",
    ),
    pytest.param(
        MINIMAL + '[routing]\nzones = { "US-CA" = "west", "us-ca" = "pacific" }\n',
        "routing.zones.us-ca",
        "same region as routing.zones.US-CA",
        id="zone-key-twice-in-other-case",
    ),
    pytest.param(
        MINIMAL + 'transit_days = { westt = 2 }\n[routing]\nzones = { "US-CA" = "west" }\n',
        "locations[0].transit_days.westt",
        "unknown zone 'westt' (known: west, default;",
        id="transit-days-for-unknown-zone",
    ),
    pytest.param(
        MINIMAL + "ship_cost = { east = 3.5 }\n",
        "locations[0].ship_cost.east",
        "unknown zone 'east' (known: default;",
        id="ship-cost-for-unknown-zone",
    ),
    pytest.param(
        MINIMAL + 'serves = ["c", "shopify"]\n' + CHANNEL,
        "locations[0].serves[1]",
        "unknown channel 'shopify' (known: c)",
        id="serves-unknown-channel",
    ),
    pytest.param(
        MINIMAL + 'serves = ["c", "c"]\n' + CHANNEL,
        "locations[0].serves[1]",
        "channel 'c' is listed twice",
        id="serves-channel-twice",
    ),
    pytest.param(
        MINIMAL + CHANNEL + "[simulator.channel_faults.d]\nerror_rate = 0.5\n",
        "simulator.channel_faults.d",
        "unknown channel 'd' (known: c)",
        id="faults-for-unknown-channel",
    ),
    pytest.param(
        MINIMAL + "[exceptions]\ndrift_check_s = 0.5\n",
        "exceptions.drift_check_s",
        "must be 0 (off) or between 1 and 86400, got 0.5",
        id="drift-check-below-a-second",
    ),
]


@pytest.mark.parametrize(("text", "key", "message"), RULE_ERRORS)
def test_rules_between_keys_name_the_key(tmp_path: Path, text: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert info.value.key == key
    assert message in info.value.message


def test_pasted_secret_is_not_echoed(tmp_path: Path) -> None:
    secret = "shpat_0123456789abcdef"
    with pytest.raises(ConfigError) as info:
        load(tmp_path, MINIMAL + CHANNEL + f'token_env = "{secret}"\n')
    assert secret not in str(info.value)
    with pytest.raises(ConfigError) as info:
        load(tmp_path, MINIMAL + '[redis]\nurl = "redis://u:hunter2@redis"\n')
    assert "hunter2" not in str(info.value)


def test_disabled_channels_are_still_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, MINIMAL + CHANNEL + "enabled = false\npercent = 101\n")
    assert info.value.key == "channels[0].percent"


def test_the_ends_of_every_range_are_accepted(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[redis]
idempotency_ttl_s = 1
connect_timeout_s = 1
[server]
port = 1
[metrics]
port = 65535
[[locations]]
id = "a"
transit_days = { default = 0 }
ship_cost = { default = 0 }
[[channels]]
id = "c"
kind = "ebay"
percent = 0
burst = 1
batch_size = 1000
sla_days = 0
[[channels]]
id = "d"
kind = "ebay"
percent = 100
batch_size = 1
rate_limit_per_s = 0.001
[exceptions]
backorder_within_days = 3650
incoming_lead_days = 0
unreachable_after_s = 86400
drift_check_s = 0
drift_confirm_s = 3600
drift_settle_s = 0
[simulator]
port = 65535
orders_per_minute = 60000
[simulator.faults]
error_rate = 1
timeout_rate = 0
latency_ms = 60000
timeout_s = 600
""",
    )
    assert (config.server.port, config.metrics.port) == (1, 65535)
    assert [ch.percent for ch in config.channels] == [0, 100]
    assert config.exceptions.drift_check_s == 0  # 0 = off; 0 < s < 1 is refused
    assert (
        load(tmp_path, MINIMAL + "[exceptions]\ndrift_check_s = 1\n").exceptions.drift_check_s == 1
    )
    assert config.simulator.faults.error_rate == 1.0
    # A number key takes an integer; the value keeps its float type.
    assert type(config.redis.connect_timeout_s) is float


# --- typed channel options (the daemon passes each adapter's Options) ---------------------------


class ShopOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """An adapter's options Struct, as the daemon hands it to load_config."""

    location_id: Annotated[int, msgspec.Meta(ge=1)]
    api_version: Literal["2024-01", "2024-04"] = "2024-04"
    key_env: EnvName | None = None
    port: Port | None = None

    def __post_init__(self) -> None:
        if self.port is not None and self.key_env is None:
            raise ValueError("port needs key_env")


def options_of(kind: str) -> type[msgspec.Struct] | None:
    return ShopOptions if kind == "shopify" else None


SHOP = '[[channels]]\nid = "s"\nkind = "shopify"\n'

OPTION_ERRORS = [
    pytest.param(
        "options = { location_id = 0 }",
        "channels[1].options.location_id",
        "must be >= 1, got 0",
        id="constraint",
    ),
    pytest.param(
        "options = { location_id = 1, port = 70000 }",
        "channels[1].options.port",
        "must be between 1 and 65535, got 70000",
        id="shared-type",
    ),
    pytest.param(
        "options = { locaton_id = 1 }",
        "channels[1].options.locaton_id",
        "unknown key (did you mean 'location_id'?)",
        id="unknown-option",
    ),
    pytest.param(
        "options = { api_version = '2024-04' }",
        "channels[1].options.location_id",
        "required key is missing",
        id="missing-option",
    ),
    pytest.param(
        'options = { location_id = "1" }',
        "channels[1].options.location_id",
        "expected an integer, got a string ('1')",
        id="option-type",
    ),
    pytest.param(
        "options = { location_id = 1, api_version = '2023' }",
        "channels[1].options.api_version",
        "must be one of '2024-01', '2024-04', got '2023'",
        id="option-choice",
    ),
    pytest.param(
        "options = { location_id = 1, key_env = 'shpss_secret' }",
        "channels[1].options.key_env",
        ENV_RULE,
        id="option-env-name-not-echoed",
    ),
    pytest.param(
        "options = { location_id = 1, port = 8443 }",
        "channels[1].options",
        "port needs key_env",
        id="post-init-names-the-table",
    ),
]


@pytest.mark.parametrize(("options", "key", "message"), OPTION_ERRORS)
def test_channel_options_are_checked_against_the_kinds_struct(
    tmp_path: Path, options: str, key: str, message: str
) -> None:
    path = write(tmp_path, MINIMAL + CHANNEL + SHOP + options + "\n")
    load_config(path)  # without the hook, options are only TOML scalars
    with pytest.raises(ConfigError) as info:
        load_config(path, channel_options=options_of)
    assert (info.value.key, info.value.message) == (key, message)


def test_channel_options_that_fit_and_kinds_without_a_struct_load(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            MINIMAL
            + CHANNEL
            + "options = { anything = 1 }\n"
            + SHOP
            + "options = { location_id = 7, key_env = 'SHOP_KEY', port = 8443 }\n",
        ),
        channel_options=options_of,
    )
    assert config.channels[1].options == {"location_id": 7, "key_env": "SHOP_KEY", "port": 8443}
    check_channel_options(config, options_of)


def test_decode_options_serves_a_channel_built_by_hand() -> None:
    assert decode_options({"location_id": 3}, ShopOptions) == ShopOptions(location_id=3)
    with pytest.raises(ConfigError) as info:
        decode_options({"location_id": 0}, ShopOptions)
    assert (info.value.key, info.value.message) == ("options.location_id", "must be >= 1, got 0")


# --- the schema describes itself -----------------------------------------------------------------


def _types_in(tp: Any) -> list[Any]:
    """`tp` and every type inside it (fields of Structs, arguments of generics)."""
    found = [tp]
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        for field in msgspec.structs.fields(tp):
            found += _types_in(field.type)
    for arg in get_args(tp):
        found += _types_in(arg)
    return found


def test_every_pattern_says_in_words_what_it_accepts() -> None:
    # A pattern's error reads "must be <description>": a pattern without one would print a regex.
    metas = [m for tp in _types_in(Config) for m in get_args(tp) if isinstance(m, msgspec.Meta)]
    patterns = [m for m in metas if m.pattern is not None]
    assert len(patterns) >= 4
    assert all(m.description for m in patterns)


def test_every_key_is_documented() -> None:
    docs = (REPO / "docs" / "configuration.md").read_text()
    sections = [f.encode_name for f in msgspec.structs.fields(Config) if f.name != "source"]
    assert [s for s in sections if f"[{s}]" not in docs and f"[[{s}]]" not in docs] == []
    structs = {
        tp
        for tp in _types_in(Config)
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct) and tp is not Config
    }
    keys = {f.encode_name for tp in structs for f in msgspec.structs.fields(tp)}
    assert sorted(key for key in keys if f"`{key}`" not in docs) == []


# --- secrets ------------------------------------------------------------------------------------


def test_resolve_secret_reads_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVSYNC_TEST_TOKEN", "shpat_abc")
    monkeypatch.setenv("INVSYNC_TEST_EMPTY", "")
    monkeypatch.delenv("INVSYNC_TEST_UNSET", raising=False)
    assert resolve_secret("INVSYNC_TEST_TOKEN") == "shpat_abc"
    assert resolve_secret("INVSYNC_TEST_EMPTY") is None
    assert resolve_secret("INVSYNC_TEST_UNSET") is None
    assert resolve_secret(None) is None


def test_config_keeps_only_the_env_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_TOKEN", "shpat_abc")
    config = load(
        tmp_path, MINIMAL + '[[channels]]\nid = "s"\nkind = "shopify"\ntoken_env = "SHOP_TOKEN"\n'
    )
    assert config.channels[0].token_env == "SHOP_TOKEN"
    assert "shpat_abc" not in repr(config)
    assert resolve_secret(config.channels[0].token_env) == os.environ["SHOP_TOKEN"]


# --- views for the engine -----------------------------------------------------------------------

POLICY_CONFIG = """
[[locations]]
id = "store-sf"
kind = "store"
priority = 50
[[locations]]
id = "wh-west"
priority = 20
[[locations]]
id = "wh-east"
priority = 20
[[locations]]
id = "3pl-tx"
kind = "3pl"

[[channels]]
id = "amazon"
kind = "amazon"
buffer = 2

[[channels]]
id = "ebay"
kind = "ebay"
percent = 50
cap = 20

[[channels]]
id = "paused"
kind = "walmart"
enabled = false

[[channels]]
id = "wholesale"
kind = "webhook"
url = "https://b2b.example/stock"
secret_env = "B2B_SECRET"
locations = ["wh-east", "wh-west"]
floor = 5

[[bundles]]
sku = "KIT-TEE-CAP"
components = { "TEE-BLK-M" = 1, "CAP-RED" = 1 }

[[bundles]]
sku = "KIT-SOCKS-3"
components = { "SOCK-WHT" = 3 }
"""


def test_location_ids_are_ordered_by_priority_then_file_order(tmp_path: Path) -> None:
    config = load(tmp_path, POLICY_CONFIG)
    assert config.location_ids() == ["wh-west", "wh-east", "store-sf", "3pl-tx"]


def test_policies_cover_enabled_channels_with_locations_defaulted_to_all(
    tmp_path: Path,
) -> None:
    everywhere = ("wh-west", "wh-east", "store-sf", "3pl-tx")
    assert load(tmp_path, POLICY_CONFIG).policies() == {
        "amazon": ChannelPolicy(locations=everywhere, buffer=2),
        "ebay": ChannelPolicy(locations=everywhere, percent=50, cap=20),
        "wholesale": ChannelPolicy(locations=("wh-east", "wh-west"), floor=5),
    }


def test_bundle_map_gives_components_per_bundle(tmp_path: Path) -> None:
    assert load(tmp_path, POLICY_CONFIG).bundle_map() == {
        "KIT-TEE-CAP": Bundle(sku="KIT-TEE-CAP", components={"TEE-BLK-M": 1, "CAP-RED": 1}),
        "KIT-SOCKS-3": Bundle(sku="KIT-SOCKS-3", components={"SOCK-WHT": 3}),
    }


def test_shipped_policies(tmp_path: Path) -> None:
    policies = load_config(REPO / "config.toml").policies()
    assert policies["amazon"].buffer == 2
    assert (policies["ebay"].percent, policies["ebay"].cap) == (50, 20)
    assert policies["wholesale"].floor == 5
    assert policies["wholesale"].locations == ("wh-east", "wh-west")


ROUTING_CONFIG = """
[[locations]]
id = "wh-east"
transit_days = { east = 1, west = 5, default = 7 }
ship_cost = { east = 4, west = 9.5, default = 12 }

[[locations]]
id = "store-sf"
kind = "store"
transit_days = { west = 1 }
serves = ["shop"]

[[channels]]
id = "shop"
kind = "shopify"
sla_days = 2

[[channels]]
id = "b2b"
kind = "walmart"

[routing]
zones = { "US-CA" = "west", US = "east" }
default_zone = "default"
fallback = "unroutable"
strategies = { b2b = "priority" }
"""


def test_routing_keys_load(tmp_path: Path) -> None:
    config = load(tmp_path, ROUTING_CONFIG)
    east, store = config.locations
    assert east.transit_days == {"east": 1, "west": 5, "default": 7}
    assert east.ship_cost == {"east": 4.0, "west": 9.5, "default": 12.0}
    assert (east.serves, store.serves) == (None, ("shop",))
    assert config.routing.zone_names() == ["west", "east", "default"]
    assert config.routing.fallback == "unroutable"
    assert config.routing.strategy_for("b2b") == "priority"
    assert config.routing.strategy_for("shop") == "sla_cost"
