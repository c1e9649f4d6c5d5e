"""The config schema: `config.toml` read once into frozen msgspec Structs, then validated.

`load_config` is the only reader of the file and of ``$INVSYNC_CONFIG``; every problem it finds
is a `ConfigError` naming the key (``channels[2].percent``), so `invsync check-config` can print
it as is. Secrets never live in the file: keys ending in ``_env`` hold the *name* of an
environment variable, read with `resolve_secret` when the secret is needed.
"""

import difflib
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import UnionType
from typing import Any, Literal, NoReturn, Union, get_args, get_origin
from urllib.parse import urlsplit

import msgspec

from .errors import InvalidRequest
from .ids import check_id, check_sku
from .policy import Bundle, ChannelPolicy, validate_bundle, validate_policy

__all__ = [
    "CHANNEL_KINDS",
    "ROUTING_STRATEGIES",
    "BundleConfig",
    "Channel",
    "ChannelKind",
    "Config",
    "ConfigError",
    "ExceptionsConfig",
    "Faults",
    "Location",
    "LocationKind",
    "MetricsConfig",
    "MqttConfig",
    "RedisConfig",
    "RoutingConfig",
    "RoutingFallback",
    "RoutingStrategy",
    "ServerConfig",
    "SimulatorConfig",
    "load_config",
    "resolve_secret",
]

ENV_VAR = "INVSYNC_CONFIG"
DEFAULT_PATH = "config.toml"

ChannelKind = Literal[
    "shopify", "amazon", "ebay", "walmart", "tiktok", "webhook", "edi846", "mqtt", "pos"
]
CHANNEL_KINDS: tuple[str, ...] = get_args(ChannelKind)
LocationKind = Literal["warehouse", "store", "3pl"]
# The router's strategies (actors/router.py): "sla_cost" is the spec's order (SLA-feasible, fewest
# shipments, lowest cost, priority); "priority" is the first router's priority order only.
RoutingStrategy = Literal["sla_cost", "priority"]
ROUTING_STRATEGIES: tuple[str, ...] = get_args(RoutingStrategy)
RoutingFallback = Literal["late", "unroutable"]

OptionValue = str | int | float | bool


class ConfigError(Exception):
    """A config that cannot be used: `key` is the dotted path of the culprit (None when the
    problem is the file itself), `message` says what is wrong; str() is one line for a human.
    """

    def __init__(
        self,
        key: str | None,
        message: str,
        *,
        source: str | Path | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.key = key
        self.message = message
        self.source = source
        self.line = line
        self.column = column
        parts: list[str] = []
        if source is not None:
            parts.append(str(source))
        if line is not None:
            parts.append(f"line {line}" if column is None else f"line {line}, column {column}")
        if key is not None:
            parts.append(key)
        parts.append(message)
        super().__init__(": ".join(parts))


# --- the schema ---------------------------------------------------------------------------------


class RedisConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[redis]`: the store. No `url` means a private embedded Valkey kept in `data_dir`."""

    url: str | None = None
    password_env: str | None = None
    data_dir: Path = Path("data")
    idempotency_ttl_s: int = 72 * 3600
    connect_timeout_s: float = 2.0
    op_timeout_s: float = 5.0


class ServerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[server]`: the HTTP/websocket listener; `token_env` set means `/v1/*` needs a bearer."""

    host: str = "127.0.0.1"
    port: int = 8080
    token_env: str | None = None


class MqttConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[mqtt]`: the broker for stock/order intake and availability topics; no `url` = off."""

    url: str | None = None
    prefix: str = "invsync/"
    client_id: str = "invsync"
    username: str | None = None
    password_env: str | None = None


class MetricsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[metrics]`: no `port` means `/metrics` is served on the server port."""

    port: int | None = None


class Location(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[[locations]]`: a place that holds stock; lower `priority` is preferred.

    Routing: `transit_days` and `ship_cost` (per shipment) by zone name; `serves` the channel ids
    it may ship orders for (None = every channel).
    """

    id: str
    name: str | None = None
    kind: LocationKind = "warehouse"
    priority: int = 100
    safety_stock: int = 0
    transit_days: dict[str, int] = {}
    ship_cost: dict[str, float] = {}
    serves: tuple[str, ...] | None = None


class Channel(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[[channels]]`: a sales channel, its credentials (by env name) and allocation policy.

    `locations` None means every location; `burst` None means one second of `rate_limit_per_s`.
    """

    id: str
    kind: ChannelKind
    enabled: bool = True
    locations: tuple[str, ...] | None = None
    buffer: int = 0
    percent: int = 100
    cap: int | None = None
    floor: int = 0
    rate_limit_per_s: float = 10.0
    burst: int | None = None
    batch_size: int = 50
    url: str | None = None
    token_env: str | None = None
    secret_env: str | None = None
    sla_days: int | None = None
    options: dict[str, OptionValue] = {}

    def effective_burst(self) -> int:
        """The token bucket size: `burst`, or by default one second's worth of requests (>= 1)."""
        if self.burst is not None:
            return self.burst
        return max(1, math.ceil(self.rate_limit_per_s))


class BundleConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[[bundles]]`: a kit SKU and its components (component SKU -> units per kit)."""

    sku: str
    components: dict[str, int]


class RoutingConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[routing]`: the router's strategy by default and per channel id, the ship-to zones
    (``"US-CA"`` or ``"US"`` -> zone; most specific wins, else `default_zone`), and what to do
    when no assignment meets a channel's SLA (`fallback`).
    """

    default_strategy: RoutingStrategy = "sla_cost"
    strategies: dict[str, RoutingStrategy] = {}
    zones: dict[str, str] = {}
    default_zone: str = "default"
    fallback: RoutingFallback = "late"

    def zone_names(self) -> list[str]:
        """Every zone a location may name: the values of `zones`, then `default_zone`."""
        return list(dict.fromkeys([*self.zones.values(), self.default_zone]))

    def strategy_for(self, channel: str) -> RoutingStrategy:
        """The strategy routing `channel`'s orders: its entry in `strategies`, else the default."""
        return self.strategies.get(channel, self.default_strategy)


class ExceptionsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[exceptions]`: exception kind -> the action applied to it automatically."""

    auto_resolve: dict[str, str] = {}
    #: Backorder automatically only when the missing units are expected within this many days.
    backorder_within_days: int = 14
    #: Days until units counted as ``incoming`` arrive (the counters carry no date of their own).
    incoming_lead_days: int = 7
    #: A channel whose breaker stays open this long gets a ``channel_unreachable`` exception.
    unreachable_after_s: float = 60.0
    #: Read back every channel that can say its quantities this often (0 = never on a timer).
    drift_check_s: float = 300.0
    #: A difference must still be there this much later (our value unchanged) to be drift.
    drift_confirm_s: float = 10.0
    #: Values pushed less than this long ago are not compared: channels apply pushes, and tell
    #: us of their own sales, late (Amazon's notifications travel through SQS).
    drift_settle_s: float = 600.0

    def __post_init__(self) -> None:
        for name in ("backorder_within_days", "incoming_lead_days"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= 3650:
                raise ValueError(f"{name} must be a whole number of days from 0 to 3650")
        if not 0 < self.unreachable_after_s <= 86_400:
            raise ValueError("unreachable_after_s must be seconds > 0 and at most 86400")
        if not (self.drift_check_s == 0 or 1 <= self.drift_check_s <= 86_400):
            raise ValueError("drift_check_s must be 0 (off) or seconds from 1 to 86400")
        if not 0 <= self.drift_confirm_s <= 3_600:
            raise ValueError("drift_confirm_s must be seconds from 0 to 3600")
        if not 0 <= self.drift_settle_s <= 86_400:
            raise ValueError("drift_settle_s must be seconds from 0 to 86400")


class Faults(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Faults the channel simulator injects into its answers (rates are fractions 0..1)."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    throttle_rate: float = 0.0
    #: How long a "timeout" holds the request before answering 504 (longer than the client waits).
    timeout_s: float = 30.0


class SimulatorConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[simulator]`: the local marketplace simulators of `invsync simulate` (not the daemon).

    Channels whose `url` starts with `http://{host}:{port}/` are simulated; order traffic goes
    to the daemon's `[server]` as each marketplace's own signed webhooks.
    """

    host: str = "127.0.0.1"
    port: int = 8090
    #: Orders generated per minute across the simulated channels (0 = none).
    orders_per_minute: float = 0.0
    seed: int | None = None
    faults: Faults = Faults()
    #: Per channel id, replacing `faults` for that channel.
    channel_faults: dict[str, Faults] = {}


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """The whole validated config; paths in it are absolute, `source` is the file it came from."""

    redis: RedisConfig = RedisConfig()
    server: ServerConfig = ServerConfig()
    mqtt: MqttConfig = MqttConfig()
    metrics: MetricsConfig = MetricsConfig()
    locations: tuple[Location, ...] = ()
    channels: tuple[Channel, ...] = ()
    bundles: tuple[BundleConfig, ...] = ()
    routing: RoutingConfig = RoutingConfig()
    exceptions: ExceptionsConfig = ExceptionsConfig()
    simulator: SimulatorConfig = SimulatorConfig()
    # Set by load_config, not read from the file (a `source` key there is rejected).
    source: Path = Path(DEFAULT_PATH)

    @property
    def redis_data_dir(self) -> Path:
        """Absolute folder of the embedded store's data (unused when `redis.url` is set)."""
        return self.redis.data_dir

    def resolve_path(self, path: str | Path) -> Path:
        """`path` made absolute the way the config's own paths are: against its folder."""
        return _absolute(path, self.source.parent)

    def location_ids(self) -> list[str]:
        """Location ids, preferred first: by `priority`, ties in file order."""
        # sorted() is stable, so equal priorities keep the order they have in the file.
        return [loc.id for loc in sorted(self.locations, key=lambda loc: loc.priority)]

    def policies(self) -> dict[str, ChannelPolicy]:
        """Channel id -> allocation policy, for enabled channels; no `locations` = all of them."""
        everywhere = tuple(self.location_ids())
        return {
            ch.id: ChannelPolicy(
                locations=everywhere if ch.locations is None else ch.locations,
                buffer=ch.buffer,
                percent=ch.percent,
                cap=ch.cap,
                floor=ch.floor,
            )
            for ch in self.channels
            if ch.enabled
        }

    def bundle_map(self) -> dict[str, Bundle]:
        """Bundle SKU -> its components, as the availability and reservation rules take it."""
        return {b.sku: Bundle(sku=b.sku, components=dict(b.components)) for b in self.bundles}


# --- loading ------------------------------------------------------------------------------------


#: A channel kind -> the Struct its ``options`` table must decode into (None: no options).
OptionsSchema = Callable[[str], "type[msgspec.Struct] | None"]


def load_config(
    path: Path | str | None = None, *, channel_options: OptionsSchema | None = None
) -> Config:
    """Read, type-check and validate a config file; ConfigError names the first bad key.

    `path` None means ``$INVSYNC_CONFIG``, else ``./config.toml``. Relative paths inside the file
    resolve against the file's folder, so the result does not depend on the working directory.
    `channel_options` gives each channel kind's options Struct (the adapters own them; the daemon
    passes ``adapters.registry.options_type``): every channel's ``options`` are checked against
    it, so a bad option is an error here, naming ``channels[N].options.KEY``.
    """
    hint = ""
    if path is None:
        from_env = os.environ.get(ENV_VAR)
        path = from_env or DEFAULT_PATH
        hint = f" (named by ${ENV_VAR})" if from_env else f" (pass -c FILE or set ${ENV_VAR})"
    shown = path
    file = Path(path).expanduser()
    try:
        text = file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(None, f"no such file{hint}", source=shown) from None
    except UnicodeDecodeError as e:
        raise ConfigError(None, f"not UTF-8 text (byte {e.start})", source=shown) from None
    except OSError as e:
        raise ConfigError(None, e.strerror or str(e), source=shown) from None

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _syntax_error(e, text, shown) from None

    source = _absolute(file, Path.cwd())
    try:
        if "source" in data:
            raise ConfigError("source", "unknown key")
        try:
            config = msgspec.convert(data, Config, dec_hook=_dec_hook)
        except msgspec.ValidationError as e:
            raise _translate(e, data) from None
        config = msgspec.structs.replace(
            config,
            source=source,
            redis=msgspec.structs.replace(
                config.redis, data_dir=_absolute(config.redis.data_dir, source.parent)
            ),
        )
        _validate(config)
        if channel_options is not None:
            check_channel_options(config, channel_options)
    except ConfigError as e:
        raise ConfigError(e.key, e.message, source=shown) from None
    return config


def check_channel_options(config: Config, channel_options: OptionsSchema) -> None:
    """Decode every channel's ``options`` into its kind's Struct; ConfigError names the key."""
    for index, channel in enumerate(config.channels):
        schema = channel_options(channel.kind)
        if schema is None:
            continue
        try:
            msgspec.convert(channel.options, schema)
        except msgspec.ValidationError as e:
            raise _translate(
                e, channel.options, root=schema, prefix=f"channels[{index}].options"
            ) from None
        except ValueError as e:  # a __post_init__ check of the options Struct
            raise ConfigError(f"channels[{index}].options", str(e)) from None


def resolve_secret(env_name: str | None) -> str | None:
    """The value of the environment variable a `*_env` key names.

    None when `env_name` is None or the variable is unset or empty.
    """
    if not env_name:
        return None
    return os.environ.get(env_name) or None


def _absolute(path: str | Path, base: Path) -> Path:
    path = Path(path).expanduser()
    # abspath, not resolve(): ".." is folded but symlinks are kept, so a config reached through
    # a symlinked folder finds its data beside the link, where its author put it.
    return Path(os.path.abspath(path if path.is_absolute() else base / path))


def _dec_hook(tp: type, obj: object) -> object:
    if tp is Path:
        if isinstance(obj, str) and obj:
            return Path(obj)
        raise ValueError(f"expected a path (a non-empty string), got {obj!r}")
    raise NotImplementedError(f"no decoder for {tp!r}")


_TOML_POSITION = re.compile(
    r"^(?P<msg>.*?) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$"
)


def _syntax_error(e: tomllib.TOMLDecodeError, text: str, shown: str | Path) -> ConfigError:
    # Python 3.11's TOMLDecodeError has no lineno attribute: the position is only in the text.
    m = _TOML_POSITION.match(str(e))
    if m is None:
        return ConfigError(None, f"invalid TOML: {e}", source=shown)
    if m["line"] is not None:
        line, column = int(m["line"]), int(m["col"])
    else:
        lines = text.split("\n")
        line, column = len(lines), len(lines[-1]) + 1
    return ConfigError(None, f"invalid TOML: {m['msg']}", source=shown, line=line, column=column)


# --- msgspec errors, in the file's terms ----------------------------------------------------------

_MSGSPEC_ERROR = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_PATH_SEGMENT = re.compile(r"\.(?P<name>\w+)|\[(?P<index>\d+|\.\.\.)\]")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "a boolean",
    "array": "an array",
    "object": "a table",
    "Path": "a path",
    "datetime": "a date-time",
    "date": "a date",
    "time": "a time",
}


def _translate(
    error: msgspec.ValidationError,
    data: Mapping[str, Any],
    *,
    root: Any = Config,
    prefix: str = "",
) -> ConfigError:
    """msgspec's ``Expected `int`, got `str` - at `$.channels[2].percent` `` as a ConfigError."""
    m = _MSGSPEC_ERROR.match(str(error))
    assert m is not None  # the pattern matches any string
    message, path = m["msg"], m["path"] or ""
    # Walk the path through the data (for the value shown) and the schema (for the valid keys).
    key = prefix
    tp: Any = root
    node: Any = data
    for seg in _PATH_SEGMENT.finditer(path):
        tp = _unwrap_optional(tp)
        if seg["name"] is not None:
            key = _join_key(key, seg["name"])
            tp = _struct_fields(tp).get(seg["name"], Any)
            node = node.get(seg["name"]) if isinstance(node, dict) else None
        elif seg["index"] == "...":
            # msgspec does not say which entry of a table failed; find it ourselves.
            value_tp = get_args(tp)[1] if get_origin(tp) is dict else Any
            entry = _first_bad_entry(node, value_tp)
            key = _join_key(key, entry) if entry is not None else f"{key}[...]"
            tp = value_tp
            node = node.get(entry) if isinstance(node, dict) and entry is not None else None
        else:
            index = int(seg["index"])
            key += f"[{index}]"
            tp = get_args(tp)[0] if get_origin(tp) in (tuple, list) else Any
            node = node[index] if isinstance(node, list) and index < len(node) else None
    tp = _unwrap_optional(tp)

    if found := re.match(r"Object contains unknown field `(.*)`", message):
        name = found[1]
        # `source` is filled in by load_config, so it is no key a user could have meant.
        known = [k for k in _struct_fields(tp) if not (tp is Config and k == "source")]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "known: " + ", ".join(known)
        return ConfigError(_join_key(key, name), f"unknown key ({hint})")
    if found := re.match(r"Object missing required field `(.*)`", message):
        return ConfigError(_join_key(key, found[1]), "required key is missing")
    if found := re.match(r"Invalid enum value (.*)", message):
        choices = ", ".join(repr(c) for c in get_args(tp))
        return ConfigError(key or None, f"must be one of {choices} (got {found[1]})")
    if found := re.match(r"Expected `(.*)`, got `(.*)`", message):
        expected = _describe_types(found[1])
        got = _describe_types(found[2])
        shown = _show(node) if not key.endswith("_env") else None
        return ConfigError(key or None, f"expected {expected}, got {got}{shown or ''}")
    return ConfigError(key or None, message)


def _unwrap_optional(tp: Any) -> Any:
    if get_origin(tp) in (Union, UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _struct_fields(tp: Any) -> dict[str, Any]:
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return {f.encode_name: f.type for f in msgspec.structs.fields(tp)}
    return {}


def _first_bad_entry(node: Any, value_tp: Any) -> str | None:
    if not isinstance(node, dict):
        return None
    for name, value in node.items():
        try:
            msgspec.convert(value, value_tp, dec_hook=_dec_hook)
        except msgspec.ValidationError:
            return str(name)
    return None


def _join_key(prefix: str, name: str) -> str:
    # TOML's own spelling of a dotted key, so the key can be searched for in the file.
    part = name if _BARE_KEY.match(name) else json.dumps(name)
    return f"{prefix}.{part}" if prefix else part


def _describe_types(spec: str) -> str:
    words = [_TYPE_WORDS.get(t, t) for t in spec.split(" | ") if t != "null"]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _show(value: object) -> str | None:
    if isinstance(value, bool):
        return f" ({'true' if value else 'false'})"
    if isinstance(value, str):
        return f" ({value!r})"
    if isinstance(value, int | float):
        return f" ({value})"
    return None


# --- semantic validation --------------------------------------------------------------------------

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# ISO 3166-1 alpha-2 country, optionally "-" and an ISO 3166-2 subdivision code ("US-CA").
_REGION = re.compile(r"^[A-Za-z]{2}(-[A-Za-z0-9]{1,3})?$")
_REDIS_SCHEMES = ("redis", "rediss", "unix", "valkey", "valkeys")
_MQTT_SCHEMES = ("mqtt", "mqtts", "ws", "wss")


def _fail(key: str, message: str) -> NoReturn:
    raise ConfigError(key, message)


def _validate(cfg: Config) -> None:
    """Raise ConfigError for the first rule the typed config breaks, in file order."""
    _check_redis(cfg.redis)
    _check_server(cfg.server)
    _check_mqtt(cfg.mqtt)
    if cfg.metrics.port is not None:
        _check_port("metrics.port", cfg.metrics.port)
        if cfg.metrics.port == cfg.server.port:
            _fail(
                "metrics.port",
                f"same as server.port ({cfg.server.port}); leave it out to serve /metrics there",
            )
    _check_locations(cfg.locations)
    _check_channels(cfg)
    _check_simulator(cfg)
    _check_bundles(cfg.bundles)
    _check_routing(cfg)


def _check_redis(redis: RedisConfig) -> None:
    if redis.url is not None:
        _check_url("redis.url", redis.url, _REDIS_SCHEMES, "redis.password_env")
    _check_env_name("redis.password_env", redis.password_env)
    _check_at_least("redis.idempotency_ttl_s", redis.idempotency_ttl_s, 1)
    _check_positive("redis.connect_timeout_s", redis.connect_timeout_s)
    _check_positive("redis.op_timeout_s", redis.op_timeout_s)


def _check_server(server: ServerConfig) -> None:
    if not server.host:
        _fail("server.host", "must not be empty")
    _check_port("server.port", server.port)
    _check_env_name("server.token_env", server.token_env)


def _check_mqtt(mqtt: MqttConfig) -> None:
    if mqtt.url is not None:
        _check_url("mqtt.url", mqtt.url, _MQTT_SCHEMES, "mqtt.password_env")
    # Topics are built as prefix + "availability/...": without the slash they would run together.
    if not mqtt.prefix.endswith("/") or "+" in mqtt.prefix or "#" in mqtt.prefix:
        _fail("mqtt.prefix", f"must end with '/' and contain no '+' or '#' (got {mqtt.prefix!r})")
    if not mqtt.client_id:
        _fail("mqtt.client_id", "must not be empty")
    _check_env_name("mqtt.password_env", mqtt.password_env)


def _check_simulator(cfg: Config) -> None:
    sim = cfg.simulator
    _check_port("simulator.port", sim.port)
    if not 0 <= sim.orders_per_minute <= 60_000:
        _fail("simulator.orders_per_minute", "must be from 0 to 60000")
    channel_ids = {ch.id for ch in cfg.channels}
    faults = [("simulator.faults", sim.faults)] + [
        (f"simulator.channel_faults.{ch}", f) for ch, f in sim.channel_faults.items()
    ]
    for ch in sim.channel_faults:
        if ch not in channel_ids:
            _fail(f"simulator.channel_faults.{ch}", f"no channel '{ch}' is configured")
    for key, f in faults:
        for name in ("error_rate", "timeout_rate", "throttle_rate"):
            if not 0.0 <= getattr(f, name) <= 1.0:
                _fail(f"{key}.{name}", "must be a fraction from 0 to 1")
        if not 0.0 <= f.latency_ms <= 60_000:
            _fail(f"{key}.latency_ms", "must be from 0 to 60000")
        if not 0.0 < f.timeout_s <= 600:
            _fail(f"{key}.timeout_s", "must be seconds > 0 and at most 600")


def _check_locations(locations: tuple[Location, ...]) -> None:
    if not locations:
        _fail("locations", "at least one [[locations]] entry is required")
    seen: dict[str, int] = {}
    for i, loc in enumerate(locations):
        _check_id(f"locations[{i}].id", loc.id, "location")
        if loc.id in seen:
            _fail(
                f"locations[{i}].id",
                f"duplicate location id '{loc.id}' (first at locations[{seen[loc.id]}])",
            )
        seen[loc.id] = i
        _check_at_least(f"locations[{i}].safety_stock", loc.safety_stock, 0)


def _check_channels(cfg: Config) -> None:
    known = [loc.id for loc in cfg.locations]
    seen: dict[str, int] = {}
    for i, ch in enumerate(cfg.channels):
        at = f"channels[{i}]"
        _check_id(f"{at}.id", ch.id, "channel")
        if ch.id in seen:
            _fail(f"{at}.id", f"duplicate channel id '{ch.id}' (first at channels[{seen[ch.id]}])")
        seen[ch.id] = i
        if ch.locations is not None:
            if not ch.locations:
                _fail(f"{at}.locations", "must name at least one location (leave out for all)")
            for j, name in enumerate(ch.locations):
                if name not in known:
                    _fail(
                        f"{at}.locations[{j}]",
                        f"unknown location '{name}' (known: {', '.join(known)})",
                    )
                if name in ch.locations[:j]:
                    _fail(f"{at}.locations[{j}]", f"location '{name}' is listed twice")
        _check_at_least(f"{at}.buffer", ch.buffer, 0)
        _check_between(f"{at}.percent", ch.percent, 0, 100)
        if ch.cap is not None:
            _check_at_least(f"{at}.cap", ch.cap, 0)
        _check_at_least(f"{at}.floor", ch.floor, 0)
        _check_positive(f"{at}.rate_limit_per_s", ch.rate_limit_per_s)
        if ch.burst is not None:
            _check_at_least(f"{at}.burst", ch.burst, 1)
        _check_between(f"{at}.batch_size", ch.batch_size, 1, 1000)
        if ch.sla_days is not None:
            _check_at_least(f"{at}.sla_days", ch.sla_days, 0)
        if ch.url is not None:
            schemes = ("http", "https") if ch.kind == "webhook" else None
            _check_url(f"{at}.url", ch.url, schemes, f"{at}.token_env")
        elif ch.kind == "webhook":
            _fail(f"{at}.url", "required for kind 'webhook' (where updates are POSTed)")
        _check_env_name(f"{at}.token_env", ch.token_env)
        _check_env_name(f"{at}.secret_env", ch.secret_env)
        if ch.kind == "webhook" and ch.secret_env is None:
            _fail(f"{at}.secret_env", "required for kind 'webhook' (the HMAC signing secret)")
        own_broker = ch.url is not None and urlsplit(ch.url).scheme in _MQTT_SCHEMES
        if ch.kind in ("mqtt", "pos") and cfg.mqtt.url is None and not own_broker:
            _fail(
                f"{at}.url",
                f"kind '{ch.kind}' needs [mqtt] url or an mqtt://, mqtts://, ws:// or wss:// "
                "url of its own",
            )
        # Backstop: the engine's own rules, so config never accepts a policy it would reject.
        try:
            validate_policy(
                ChannelPolicy(
                    locations=ch.locations or (),
                    buffer=ch.buffer,
                    percent=ch.percent,
                    cap=ch.cap,
                    floor=ch.floor,
                )
            )
        except ValueError as e:
            _fail(at, str(e))


def _check_bundles(bundles: tuple[BundleConfig, ...]) -> None:
    skus = {b.sku for b in bundles}
    seen: dict[str, int] = {}
    for i, bundle in enumerate(bundles):
        at = f"bundles[{i}]"
        _check_sku(f"{at}.sku", bundle.sku)
        if bundle.sku in seen:
            _fail(
                f"{at}.sku",
                f"duplicate bundle sku '{bundle.sku}' (first at bundles[{seen[bundle.sku]}])",
            )
        seen[bundle.sku] = i
        if not bundle.components:
            _fail(f"{at}.components", "must list at least one component SKU")
        for component, units in bundle.components.items():
            key = _join_key(f"{at}.components", component)
            _check_sku(key, component)
            if component == bundle.sku:
                _fail(key, "a bundle cannot contain itself")
            if component in skus:
                _fail(key, f"'{component}' is itself a bundle; list its components instead")
            _check_at_least(key, units, 1)
        try:
            validate_bundle(Bundle(sku=bundle.sku, components=dict(bundle.components)))
        except ValueError as e:
            _fail(at, str(e))


def _check_routing(cfg: Config) -> None:
    routing = cfg.routing
    channels = [ch.id for ch in cfg.channels]
    for channel in routing.strategies:
        key = _join_key("routing.strategies", channel)
        if channel not in channels:
            _fail(key, f"unknown channel '{channel}' (known: {', '.join(channels)})")
    seen: dict[str, str] = {}
    for region, zone in routing.zones.items():
        key = _join_key("routing.zones", region)
        if not _REGION.match(region):
            _fail(key, 'must be a country code or country-region, like "US" or "US-CA"')
        # Ship-to addresses are matched without regard to case, so "us-ca" and "US-CA" clash.
        if region.upper() in seen:
            _fail(key, f"same region as {_join_key('routing.zones', seen[region.upper()])}")
        seen[region.upper()] = region
        if not zone:
            _fail(key, "zone name must not be empty")
    if not routing.default_zone:
        _fail("routing.default_zone", "must not be empty")
    zones = routing.zone_names()
    for i, loc in enumerate(cfg.locations):
        at = f"locations[{i}]"
        for zone, days in loc.transit_days.items():
            key = _join_key(f"{at}.transit_days", zone)
            _check_zone(key, zone, zones)
            _check_at_least(key, days, 0)
        for zone, cost in loc.ship_cost.items():
            key = _join_key(f"{at}.ship_cost", zone)
            _check_zone(key, zone, zones)
            if not (math.isfinite(cost) and cost >= 0):
                _fail(key, f"must be a number >= 0 (got {cost})")
        if loc.serves is not None:
            for j, channel in enumerate(loc.serves):
                key = f"{at}.serves[{j}]"
                if channel not in channels:
                    _fail(key, f"unknown channel '{channel}' (known: {', '.join(channels)})")
                if channel in loc.serves[:j]:
                    _fail(key, f"channel '{channel}' is listed twice")


def _check_zone(key: str, zone: str, zones: list[str]) -> None:
    if zone not in zones:
        _fail(
            key,
            f"unknown zone '{zone}' (known: {', '.join(zones)}; zones are the values of "
            "routing.zones and routing.default_zone)",
        )


def _check_id(key: str, value: str, what: str) -> None:
    # One rule with the engine's: ids end up in Redis keys and hash fields.
    try:
        check_id(value, what)
    except InvalidRequest as e:
        _fail(key, e.message)


def _check_sku(key: str, value: str) -> None:
    try:
        check_sku(value)
    except InvalidRequest as e:
        _fail(key, e.message)


def _check_env_name(key: str, value: str | None) -> None:
    # The value is not echoed: what fails this check is most likely a pasted secret.
    if value is not None and not _ENV_NAME.match(value):
        _fail(
            key,
            "must be the name of an environment variable (like SHOPIFY_TOKEN), "
            "not the secret itself",
        )


def _check_url(key: str, url: str, schemes: Iterable[str] | None, secret_key: str) -> None:
    parts = urlsplit(url)
    # Checked first so that the messages below never echo a password.
    if parts.password:
        _fail(
            key,
            f"must not contain a password; put the name of a variable holding it in "
            f"{secret_key} instead",
        )
    allowed = tuple(schemes) if schemes is not None else None
    if not parts.scheme or (allowed is not None and parts.scheme not in allowed):
        expected = " or ".join(f"{s}://" for s in allowed) if allowed else "scheme://"
        _fail(key, f"must be a URL starting with {expected} (got {url!r})")


def _check_port(key: str, port: int) -> None:
    _check_between(key, port, 1, 65535)


def _check_between(key: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        _fail(key, f"must be between {low} and {high} (got {value})")


def _check_at_least(key: str, value: int, low: int) -> None:
    if value < low:
        _fail(key, f"must be at least {low} (got {value})")


def _check_positive(key: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        _fail(key, f"must be a number greater than 0 (got {value})")
