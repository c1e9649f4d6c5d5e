"""What every adapter's ``Options`` is made of: constrained option types, the conversion of a
channel's ``options`` table into them, and the secrets ``*_env`` options name.

Each adapter declares ``Options``, a frozen ``msgspec.Struct`` (``kw_only=True,
forbid_unknown_fields=True``) of its ``[[channels]] options`` table, built from the types below;
``registry.options_type`` hands it to the config loader, so a bad option is refused at load with
its key's path (``channels[2].options.timeout_s``). ``create`` converts once with
``parse_options``: for a loaded config that cannot fail; for a channel built by hand (tests, the
bench) the ValueError names the key the same way.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec

from ..core.config import (
    Channel,
    ConfigError,
    EnvName,
    NonEmpty,
    Seconds,
    decode_options,
    resolve_secret,
)
from ..core.config_errors import FINITE
from .registry import MissingSecret

__all__ = [
    "EnvName",
    "HttpUrl",
    "NonEmpty",
    "Seconds",
    "SecondsOrZero",
    "Timeout",
    "option_secret",
    "parse_options",
    "require_env",
]

# The types ``core.config`` builds its own schema from, shared so that a channel option and a
# top-level key of the same kind follow one rule: ``EnvName`` (a ``*_env`` option: the *name* of
# an environment variable, never the secret), ``NonEmpty`` (a string that says something) and
# ``Seconds`` (a finite duration > 0).

#: A finite duration of 0 seconds (no wait) or more.
SecondsOrZero = Annotated[
    float, msgspec.Meta(ge=0, le=FINITE, description="A duration in seconds, 0 or more.")
]
#: ``options.timeout_s``: the longest one call to the channel may take (default 10 s).
Timeout = Seconds
#: An ``http://`` or ``https://`` URL (token endpoints and the like).
HttpUrl = Annotated[
    str, msgspec.Meta(pattern=r"^https?://[^\s/]+\S*$", description="an http:// or https:// URL")
]

_O = TypeVar("_O", bound=msgspec.Struct)


def parse_options(channel: Channel, schema: type[_O]) -> _O:
    """``channel.options`` as ``schema``; ValueError ``channel 'x': options.KEY: what is wrong``
    when they do not fit (only a channel built by hand can get here: load checked the rest).
    The words are the config loader's own (`core.config.decode_options`): one translation."""
    try:
        return decode_options(channel.options, schema)
    except ConfigError as exc:
        raise ValueError(f"channel '{channel.id}': {exc}") from None


def require_env(channel_id: str, key: str, env: str | None) -> str:
    """The value of the environment variable ``env`` that the config's ``key`` names
    (``"token_env"``, ``"options.client_id_env"``); MissingSecret when it is unset or empty, or
    when ``env`` is None (nothing configured)."""
    value = resolve_secret(env)
    if value is None:
        raise MissingSecret(channel_id, key, env)
    return value


def option_secret(channel: Channel, key: str, env: str) -> str:
    """The secret of ``options.<key>`` (a ``*_env`` Options field whose value is ``env``);
    MissingSecret naming ``options.<key>`` and the variable when it is unset or empty."""
    return require_env(channel.id, f"options.{key}", env)
