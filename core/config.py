"""The config schema: `config.toml` read once into frozen msgspec Structs, then validated.

`load_config` is the only reader of the file and of ``$INVSYNC_CONFIG``; every problem it finds
is a `ConfigError` naming the key (``channels[2].percent``), so `invsync check-config` can print
it as is. Secrets never live in the file: keys ending in ``_env`` hold the *name* of an
environment variable, read with `resolve_secret` when the secret is needed.

The schema carries its own rules: each key's type is a named constrained type (`Port`,
`EnvName`, `Seconds`, `Percent`, ...) whose `msgspec.Meta` says its range or pattern, so
decoding refuses a bad value. Only the rules that relate keys to each other (a channel naming an
unknown location, duplicate ids, URL schemes, ...) are code, in `_validate`.
"""

import math
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar, get_args
from urllib.parse import urlsplit

import msgspec

from .config_errors import FINITE, ConfigError, join_key, syntax_error, translate
from .fulfillment_config import Fulfillment, MqttFulfillment, WebhookFulfillment
from .ids import Id, Sku
from .policy import Bundle, ChannelPolicy, KitUnits, Percent, Units

__all__ = [
    "CHANNEL_KINDS",
    "MAIN_TOKEN_NAME",
    "ROUTING_STRATEGIES",
    "BundleConfig",
    "Channel",
    "ChannelKind",
    "Config",
    "ConfigError",
    "Cost",
    "Days",
    "EnvName",
    "ExceptionsConfig",
    "Faults",
    "Fraction",
    "Location",
    "LocationKind",
    "LogFormat",
    "LoggingConfig",
    "MetricsConfig",
    "MqttConfig",
    "NonEmpty",
    "PerSecond",
    "Port",
    "RedisConfig",
    "Region",
    "RoutingConfig",
    "RoutingFallback",
    "RoutingStrategy",
    "Seconds",
    "ServerAuth",
    "ServerConfig",
    "SimulatorConfig",
    "check_channel_options",
    "decode_options",
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
# The router's strategies (engine/routing.py): "sla_cost" is the spec's order (SLA-feasible,
# fewest shipments, lowest cost, priority); "priority" is the first router's priority order only.
RoutingStrategy = Literal["sla_cost", "priority"]
ROUTING_STRATEGIES: tuple[str, ...] = get_args(RoutingStrategy)
RoutingFallback = Literal["late", "unroutable"]

# A list of strings for options that name several things (a webhook's `accept_stock`), or of
# small tables for options that describe several things (an EDI partner's `ref` / `n1`).
OptionScalar = str | int | float | bool
OptionValue = OptionScalar | list[str | dict[str, OptionScalar]]


# --- the constrained types ------------------------------------------------------------------------
#
# A Meta with a `pattern` says in its `description` what the pattern accepts: a value that does
# not match is reported as "must be <description>". Ranges are reported from the bounds alone.


Port = Annotated[int, msgspec.Meta(ge=1, le=65535, description="A TCP port.")]
EnvName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="the name of an environment variable (like SHOPIFY_TOKEN), "
        "not the secret itself",
    ),
]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=FINITE, description="A duration in seconds.")]
PerSecond = Annotated[float, msgspec.Meta(gt=0, le=FINITE, description="A rate per second.")]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1, description="A fraction from 0 to 1.")]
Days = Annotated[int, msgspec.Meta(ge=0, description="A number of days, 0 or more.")]
Cost = Annotated[float, msgspec.Meta(ge=0, le=FINITE, description="A cost, 0 or more.")]
# ISO 3166-1 alpha-2 country, optionally "-" and an ISO 3166-2 subdivision code ("US-CA").
Region = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z]{2}(-[A-Za-z0-9]{1,3})?$",
        description='a country code or country-region, like "US" or "US-CA"',
    ),
]
# Topics are built as prefix + "availability/...": without the slash they would run together.
TopicPrefix = Annotated[
    str,
    msgspec.Meta(
        pattern=r"\A[^+#]*/\Z", description="a topic prefix ending with '/', without '+' or '#'"
    ),
]


# --- the schema ---------------------------------------------------------------------------------


class RedisConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[redis]`: the store. No `url` means a private embedded Valkey kept in `data_dir`."""

    url: str | None = None
    password_env: EnvName | None = None
    data_dir: Path = Path("data")
    idempotency_ttl_s: Annotated[int, msgspec.Meta(ge=1)] = 72 * 3600
    connect_timeout_s: Seconds = 2.0
    op_timeout_s: Seconds = 5.0
    # Failed attempts (errors of the event itself, not outages) before an event is set aside.
    event_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    # Seconds the store may stay unreachable before the daemon stops feeding systemd's watchdog.
    unreachable_exit_s: Seconds = 120.0


ServerAuth = Literal["token", "none"]
# A name the browser may put in `Host` (DNS rebinding defence): no scheme, port or path.
HostName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$",
        description='a host name like "inventory.example.com" (no scheme, port or path)',
    ),
]
WebOrigin = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$",
        description='an origin like "https://ops.example.com" (scheme://host[:port], no path)',
    ),
]
#: The name the main API token (`token_env`, or the generated one) acts under.
MAIN_TOKEN_NAME = "operator"
_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class ServerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[server]`: the HTTP/websocket listener and who may use `/v1/*` (daemon/security.py).

    `auth = "token"` (the default): `/v1/*` needs a token, the one `token_env` names or, without
    it, one generated into the data directory; `tokens` adds named ones (name -> env name).
    `auth = "none"` is allowed on a loopback host only. `allowed_hosts`/`allowed_origins` add to
    the `Host` names and browser origins accepted besides loopback and `host` itself.
    """

    host: NonEmpty = "127.0.0.1"
    port: Port = 8080
    auth: ServerAuth = "token"
    token_env: EnvName | None = None
    tokens: dict[Id, EnvName] = {}
    allowed_hosts: tuple[HostName, ...] = ()
    allowed_origins: tuple[WebOrigin, ...] = ()


class MqttConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[mqtt]`: the broker for stock/order intake and availability topics; no `url` = off."""

    url: str | None = None
    prefix: TopicPrefix = "invsync/"
    client_id: NonEmpty = "invsync"
    username: str | None = None
    password_env: EnvName | None = None


#: How log lines are written: "console" (readable lines for a person), "json" (one object a
#: line, for journald and log shippers) or "auto" (console on a terminal, JSON elsewhere).
LogFormat = Literal["auto", "console", "json"]


class LoggingConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[logging]`: the daemon's log lines on stdout (daemon/logs.py); `--log-format` wins."""

    format: LogFormat = "auto"


class MetricsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[metrics]`: no `port` means `/metrics` is served on the server port."""

    port: Port | None = None


class Location(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[[locations]]`: a place that holds stock; lower `priority` is preferred.

    Routing: `transit_days` and `ship_cost` (per shipment) by zone name; `serves` the channel ids
    it may ship orders for (None = every channel).
    """

    id: Id
    name: str | None = None
    kind: LocationKind = "warehouse"
    priority: int = 100
    safety_stock: Units = 0
    transit_days: dict[str, Days] = {}
    ship_cost: dict[str, Cost] = {}
    serves: tuple[str, ...] | None = None
    #: Where the location's order parts are handed over (core/fulfillment_config.py); None:
    #: nowhere, invsync only reserves there.
    fulfillment: Fulfillment | None = None


class Channel(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[[channels]]`: a sales channel, its credentials (by env name) and allocation policy.

    `locations` None means every location; `burst` None means one second of `rate_limit_per_s`.
    `optional` true lets the daemon start without it when its credentials are missing (it is
    then reported not ready by `/readyz`); by default such a channel stops the start.
    """

    id: Id
    kind: ChannelKind
    enabled: bool = True
    optional: bool = False
    locations: Annotated[tuple[str, ...], msgspec.Meta(min_length=1)] | None = None
    buffer: Units = 0
    percent: Percent = 100
    cap: Units | None = None
    floor: Units = 0
    rate_limit_per_s: PerSecond = 10.0
    burst: Annotated[int, msgspec.Meta(ge=1)] | None = None
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50
    url: str | None = None
    token_env: EnvName | None = None
    secret_env: EnvName | None = None
    sla_days: Days | None = None
    options: dict[str, OptionValue] = {}

    def effective_burst(self) -> int:
        """The token bucket size: `burst`, or by default one second's worth of requests (>= 1)."""
        if self.burst is not None:
            return self.burst
        return max(1, math.ceil(self.rate_limit_per_s))


class BundleConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[[bundles]]`: a kit SKU and its components (component SKU -> units per kit)."""

    sku: Sku
    components: Annotated[dict[Sku, KitUnits], msgspec.Meta(min_length=1)]


class RoutingConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[routing]`: the router's strategy by default and per channel id, the ship-to zones
    (``"US-CA"`` or ``"US"`` -> zone; most specific wins, else `default_zone`), and what to do
    when no assignment meets a channel's SLA (`fallback`).
    """

    default_strategy: RoutingStrategy = "sla_cost"
    strategies: dict[str, RoutingStrategy] = {}
    zones: dict[Region, NonEmpty] = {}
    default_zone: NonEmpty = "default"
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
    backorder_within_days: Annotated[
        Days,
        msgspec.Meta(
            le=3650,
            description="Backorder automatically only when the missing units are expected "
            "within this many days.",
        ),
    ] = 14
    incoming_lead_days: Annotated[
        Days,
        msgspec.Meta(
            le=3650,
            description="Days until units counted as `incoming` arrive (the counters carry no "
            "date of their own).",
        ),
    ] = 7
    unreachable_after_s: Annotated[
        float,
        msgspec.Meta(
            gt=0,
            le=86_400,
            description="A channel whose breaker stays open this long gets a "
            "`channel_unreachable` exception.",
        ),
    ] = 60.0
    # 0 or 1..86400: the gap below 1 is a rule of `_validate`, a Meta states one range only.
    drift_check_s: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            le=86_400,
            description="Read back every channel that can say its quantities this often "
            "(0 = never on a timer).",
        ),
    ] = 300.0
    drift_confirm_s: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            le=3_600,
            description="A difference must still be there this much later (our value "
            "unchanged) to be drift.",
        ),
    ] = 10.0
    # Channels apply pushes, and tell us of their own sales, late (Amazon's through SQS).
    drift_settle_s: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            le=86_400,
            description="Values pushed less than this long ago are not compared for drift.",
        ),
    ] = 600.0


class Faults(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Faults the channel simulator injects into its answers (rates are fractions 0..1)."""

    latency_ms: Annotated[float, msgspec.Meta(ge=0, le=60_000)] = 0.0
    error_rate: Fraction = 0.0
    timeout_rate: Fraction = 0.0
    throttle_rate: Fraction = 0.0
    timeout_s: Annotated[
        float,
        msgspec.Meta(
            gt=0,
            le=600,
            description="How long a timeout holds the request before answering 504 (longer "
            "than the client waits).",
        ),
    ] = 30.0


class SimulatorConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`[simulator]`: the local marketplace simulators of `invsync simulate` (not the daemon).

    Channels whose `url` starts with `http://{host}:{port}/` are simulated; order traffic goes
    to the daemon's `[server]` as each marketplace's own signed webhooks.
    """

    host: str = "127.0.0.1"
    port: Port = 8090
    orders_per_minute: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            le=60_000,
            description="Orders generated per minute across the simulated channels (0 = none).",
        ),
    ] = 0.0
    seed: int | None = None
    faults: Faults = Faults()
    channel_faults: Annotated[
        dict[str, Faults],
        msgspec.Meta(description="Per channel id, replacing `faults` for that channel."),
    ] = {}
    # The living demo (simulators/demo.py): what happens to orders and stock after a sale.
    ship_after_s: Annotated[float, msgspec.Meta(
        ge=0, le=86_400, description="Mean seconds from a sale to its shipment (0 = never)."
    )] = 90.0
    cancel_rate: Fraction = 0.05
    cancel_after_s: Annotated[float, msgspec.Meta(
        gt=0, le=86_400, description="Mean seconds from a sale to a buyer's cancellation."
    )] = 5.0
    pick_s: Annotated[float, msgspec.Meta(
        gt=0, le=86_400, description="Mean seconds a simulated warehouse takes to pick."
    )] = 15.0
    store_sales_per_minute: Annotated[float, msgspec.Meta(
        ge=0, le=60_000, description="Walk-in sales per minute at each store location."
    )] = 0.0
    store_return_rate: Fraction = 0.1
    restock_every_s: Annotated[float, msgspec.Meta(
        ge=0, le=86_400, description="Seconds between receiving rounds (0 = never)."
    )] = 0.0
    restock_lead_s: Annotated[float, msgspec.Meta(
        ge=0, le=86_400, description="Seconds from announcing incoming units to receiving them."
    )] = 60.0
    surprise_every_s: Annotated[float, msgspec.Meta(
        ge=0, le=86_400, description="Mean seconds between a drift or an oversell (0 = never)."
    )] = 0.0


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """The whole validated config; paths in it are absolute, `source` is the file it came from."""

    redis: RedisConfig = RedisConfig()
    server: ServerConfig = ServerConfig()
    mqtt: MqttConfig = MqttConfig()
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()
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


# `source` is filled in by load_config, so it is no key a user could have meant.
_HIDDEN = {Config: frozenset({"source"})}


# --- loading ------------------------------------------------------------------------------------


#: A channel kind -> the Struct its ``options`` table must decode into (None: no options).
OptionsSchema = Callable[[str], "type[msgspec.Struct] | None"]
S = TypeVar("S", bound=msgspec.Struct)


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
        raise syntax_error(e, text, shown) from None

    source = _absolute(file, Path.cwd())
    try:
        if "source" in data:
            raise ConfigError("source", "unknown key")
        try:
            config = msgspec.convert(data, Config, dec_hook=_dec_hook)
        except msgspec.ValidationError as e:
            raise translate(e, data, root=Config, hidden=_HIDDEN, dec_hook=_dec_hook) from None
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
    """Decode every channel's ``options`` into its kind's Struct; ConfigError names the key.

    A constraint or type error names ``channels[N].options.KEY``; a ValueError of the Struct's
    own ``__post_init__`` (which msgspec reports without a key) names ``channels[N].options``.
    """
    for index, channel in enumerate(config.channels):
        schema = channel_options(channel.kind)
        if schema is not None:
            decode_options(channel.options, schema, key=f"channels[{index}].options")


def decode_options(options: Mapping[str, Any], schema: type[S], *, key: str = "options") -> S:
    """`options` (a channel's table) decoded into `schema`; a ConfigError naming ``{key}.KEY``
    in the config's words when they do not fit (``{key}`` itself for a ``__post_init__`` error).
    """
    try:
        return msgspec.convert(options, schema, dec_hook=_dec_hook)
    except msgspec.ValidationError as e:
        raise translate(e, options, root=schema, prefix=key, dec_hook=_dec_hook) from None


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


# --- the rules between keys -----------------------------------------------------------------------

_REDIS_SCHEMES = ("redis", "rediss", "unix", "valkey", "valkeys")
_MQTT_SCHEMES = ("mqtt", "mqtts", "ws", "wss")


def _fail(key: str, message: str) -> NoReturn:
    raise ConfigError(key, message)


def _validate(cfg: Config) -> None:
    """Raise ConfigError for the first rule between keys the decoded config breaks.

    Each value's own range, pattern or choices were checked by decoding (the schema's types).
    """
    if cfg.redis.url is not None:
        _check_url("redis.url", cfg.redis.url, _REDIS_SCHEMES, "redis.password_env")
    if cfg.mqtt.url is not None:
        _check_url("mqtt.url", cfg.mqtt.url, _MQTT_SCHEMES, "mqtt.password_env")
    _check_server(cfg.server)
    if cfg.metrics.port is not None and cfg.metrics.port == cfg.server.port:
        _fail(
            "metrics.port",
            f"same as server.port ({cfg.server.port}); leave it out to serve /metrics there",
        )
    if not cfg.locations:
        _fail("locations", "at least one [[locations]] entry is required")
    _check_unique("locations", "id", "location id", [loc.id for loc in cfg.locations])
    _check_channels(cfg)
    channels = [ch.id for ch in cfg.channels]
    for ch in cfg.simulator.channel_faults:
        _check_known(join_key("simulator.channel_faults", ch), ch, channels, "channel")
    _check_bundles(cfg.bundles)
    _check_routing(cfg)
    drift_check_s = cfg.exceptions.drift_check_s
    if 0 < drift_check_s < 1:
        _fail(
            "exceptions.drift_check_s",
            f"must be 0 (off) or between 1 and 86400, got {drift_check_s}",
        )


def _check_server(server: ServerConfig) -> None:
    if server.auth == "none":
        if server.host not in _LOOPBACK_HOSTS and not server.host.startswith("127."):
            _fail(
                "server.auth",
                f'"none" is allowed only on a loopback host (127.0.0.1, ::1, localhost), not '
                f"{server.host!r}: anyone who reaches the port could change stock",
            )
        if server.token_env is not None or server.tokens:
            _fail("server.auth", '"none" takes no token_env or tokens (they would be unused)')
    if MAIN_TOKEN_NAME in server.tokens:
        _fail(
            join_key("server.tokens", MAIN_TOKEN_NAME),
            f"'{MAIN_TOKEN_NAME}' is the main token's name (token_env, or the generated one)",
        )


def _check_channels(cfg: Config) -> None:
    _check_unique("channels", "id", "channel id", [ch.id for ch in cfg.channels])
    known = [loc.id for loc in cfg.locations]
    for i, ch in enumerate(cfg.channels):
        at = f"channels[{i}]"
        _check_refs(f"{at}.locations", ch.locations or (), known, "location")
        if ch.url is not None:
            schemes = ("http", "https") if ch.kind == "webhook" else None
            _check_url(f"{at}.url", ch.url, schemes, f"{at}.token_env")
        elif ch.kind == "webhook":
            _fail(f"{at}.url", "required for kind 'webhook' (where updates are POSTed)")
        if ch.kind == "webhook" and ch.secret_env is None:
            _fail(f"{at}.secret_env", "required for kind 'webhook' (the HMAC signing secret)")
        own_broker = ch.url is not None and urlsplit(ch.url).scheme in _MQTT_SCHEMES
        if ch.kind in ("mqtt", "pos") and cfg.mqtt.url is None and not own_broker:
            _fail(
                f"{at}.url",
                f"kind '{ch.kind}' needs [mqtt] url or an mqtt://, mqtts://, ws:// or wss:// "
                "url of its own",
            )


def _check_bundles(bundles: tuple[BundleConfig, ...]) -> None:
    _check_unique("bundles", "sku", "bundle sku", [b.sku for b in bundles])
    skus = {b.sku for b in bundles}
    for i, bundle in enumerate(bundles):
        for component in bundle.components:
            key = join_key(f"bundles[{i}].components", component)
            if component == bundle.sku:
                _fail(key, "a bundle cannot contain itself")
            if component in skus:
                _fail(key, f"'{component}' is itself a bundle; list its components instead")


def _check_routing(cfg: Config) -> None:
    routing = cfg.routing
    channels = [ch.id for ch in cfg.channels]
    for channel in routing.strategies:
        _check_known(join_key("routing.strategies", channel), channel, channels, "channel")
    seen: dict[str, str] = {}
    for region in routing.zones:
        # Ship-to addresses are matched without regard to case, so "us-ca" and "US-CA" clash.
        if region.upper() in seen:
            _fail(
                join_key("routing.zones", region),
                f"same region as {join_key('routing.zones', seen[region.upper()])}",
            )
        seen[region.upper()] = region
    zones = routing.zone_names()
    for i, loc in enumerate(cfg.locations):
        at = f"locations[{i}]"
        for table, names in (("transit_days", loc.transit_days), ("ship_cost", loc.ship_cost)):
            for zone in names:
                if zone not in zones:
                    _fail(
                        join_key(f"{at}.{table}", zone),
                        f"unknown zone '{zone}' (known: {', '.join(zones)}; zones are the "
                        "values of routing.zones and routing.default_zone)",
                    )
        _check_refs(f"{at}.serves", loc.serves or (), channels, "channel")
        fulfillment = loc.fulfillment
        if isinstance(fulfillment, WebhookFulfillment):
            _check_url(f"{at}.fulfillment.url", fulfillment.url, ("http", "https"),
                       f"{at}.fulfillment.secret_env")
        elif isinstance(fulfillment, MqttFulfillment) and cfg.mqtt.url is None:
            _fail(f"{at}.fulfillment.topic", "kind 'mqtt' needs [mqtt] url (the broker)")


def _check_unique(table: str, field: str, what: str, values: list[str]) -> None:
    first: dict[str, int] = {}
    for i, value in enumerate(values):
        if value in first:
            _fail(
                f"{table}[{i}].{field}",
                f"duplicate {what} '{value}' (first at {table}[{first[value]}])",
            )
        first[value] = i


def _check_known(key: str, name: str, known: list[str], what: str) -> None:
    if name not in known:
        _fail(key, f"unknown {what} '{name}' (known: {', '.join(known)})")


def _check_refs(key: str, names: Sequence[str], known: list[str], what: str) -> None:
    """Each of `names` (the list at `key`) is one of `known`, and is listed once."""
    for j, name in enumerate(names):
        _check_known(f"{key}[{j}]", name, known, what)
        if name in names[:j]:
            _fail(f"{key}[{j}]", f"{what} '{name}' is listed twice")


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
        _fail(key, f"must be a URL starting with {expected}, got {url!r}")
