"""The ``options`` table of a ``tiktok`` channel, checked when the config is loaded.

Names, defaults and meanings are those of ``docs/channels/tiktok.md``; ``*_env`` options name an
environment variable (the secret itself never sits in the config file).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from ..options import EnvName, HttpUrl, NonEmpty, Seconds, Timeout

__all__ = ["DEFAULT_AUTH_URL", "Options"]

DEFAULT_AUTH_URL = "https://auth.tiktok-shops.com"


class Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """``[[channels]] options`` of kind ``tiktok``."""

    #: The app's App Key (Partner Center), sent as ``app_key`` and signed.
    app_key: NonEmpty
    #: Variable holding the App Secret: signs every request and verifies webhooks.
    app_secret_env: EnvName
    #: The shop's cipher (Get Authorized Shops, ``data.shops[].cipher``).
    shop_cipher: NonEmpty
    #: The warehouse whose quantity invsync owns (Get Warehouse List).
    warehouse_id: NonEmpty
    #: Variable holding the refresh token; without it an expired access token stays refused.
    refresh_token_env: EnvName | None = None
    #: Token host: ``GET {auth_url}/api/v2/token/refresh``.
    auth_url: HttpUrl = DEFAULT_AUTH_URL
    #: When set (not empty), webhooks of another shop are refused.
    shop_id: str | None = None
    #: Per-request timeout; also bounds a new order's whole lookup while its webhook waits.
    timeout_s: Timeout = 10.0
    #: Simulator only (the adapter ignores them): the simulated per-second limit and burst, and
    #: the seller SKUs the simulated catalogue does not have.
    sim_rate_per_s: Seconds = 10.0
    sim_burst: Annotated[int, msgspec.Meta(ge=1)] | None = None
    unlisted_prefix: str | None = None

    @property
    def own_shop_id(self) -> str | None:
        """``shop_id`` when it names a shop; an empty one checks nothing, as if unset."""
        return self.shop_id or None
