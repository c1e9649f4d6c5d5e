"""One signed call to TikTok Shop's Partner API, its error codes, and the access token.

Every call is ``{url}{path}?app_key=…&timestamp=…&shop_cipher=…&sign=…`` with the seller's access
token in ``x-tts-access-token`` and a JSON body; every answer is the envelope
``{"code", "message", "request_id", "data"}`` where ``code`` 0 is success.

- Errors (partner.tiktokshop.com/docv2/page/common-errors as classified by the tiktok-shop Ruby
  gem's error table tests, and endpoint error tables): 36009002 "Too many requests" (HTTP 429) and
  12052109 "number of requests from merchants over limit" → ``Throttled`` (Retry-After when sent,
  else 1 s: the limits are per second); 105001/105002 invalid/expired access token, 36004004 →
  ``Unauthorized`` (refresh once and retry); 36009003 internal error, 12001000 → ``Retryable``;
  106001 bad signature, 36009004 invalid parameter/credentials and business codes →
  ``Permanent``. 12052260/12052048/12019022 (product or SKU id unknown to the shop) also drop the
  cached ids so the next change of the SKU looks it up again.
- Tokens: the access token from ``token_env``; with ``options.refresh_token_env`` a refused or
  expired token is refreshed at ``GET {auth_url}/api/v2/token/refresh?app_key&app_secret&
  refresh_token&grant_type=refresh_token`` → ``data.{access_token, access_token_expire_in (epoch
  seconds), refresh_token}`` (EcomPHP ``src/Auth.php``; tudinhacoustic/tiktok-shop README).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import aiohttp
import msgspec
import structlog

from ...core.clock import Clock
from ..base import Permanent, Retryable, Throttled, Unauthorized
from ..http import HttpReply, check, client_timeout, send
from ..tokens import TokenReply, TokenSource, with_token
from .options import Options
from .signing import sign_request
from .wire import TokenData, decode_data, decode_head

__all__ = [
    "API_VERSION",
    "AUTH_CODES",
    "REFUSED_CODES",
    "RETRYABLE_CODES",
    "STALE_CODES",
    "THROTTLE_CODES",
    "ApiError",
    "TikTokClient",
]

log = structlog.get_logger("invsync.adapters.tiktok")

API_VERSION = "202309"

THROTTLE_CODES = frozenset({36009002, 12052109})
AUTH_CODES = frozenset({105000, 105001, 105002, 105003, 105004, 36004004})
RETRYABLE_CODES = frozenset({36009003, 12001000, 33001002})
#: Bad signature, invalid parameter or app credentials: a new access token would not help.
REFUSED_CODES = frozenset({106001, 36009004})
#: The product or SKU id is not (or no longer) the shop's: look the seller SKU up again.
STALE_CODES = frozenset({12052260, 12052048, 12019022})
#: Seconds to wait after a throttle answer without Retry-After (TikTok limits are per second).
DEFAULT_THROTTLE_S = 1.0
#: Lifetime assumed for the configured access token (TikTok issues them for 7 days).
CONFIGURED_TOKEN_S = 7 * 86_400.0


class ApiError(Permanent):
    """A refusal carrying TikTok's code (business errors come with HTTP 200)."""

    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.code = code


class TikTokClient:
    """Signed calls to one shop with its access token, refreshed once on a refusal when a
    refresh token is configured.

    ``options`` and ``clock`` (what throttle waits sleep on) travel with it to the push,
    read-back and webhook code; ``monotonic`` drives token expiry, ``wall`` the ``timestamp``.
    """

    def __init__(
        self,
        channel_id: str,
        session: aiohttp.ClientSession,
        url: str,
        options: Options,
        *,
        app_secret: str,
        access_token: str | None,
        refresh_token: str | None,
        clock: Clock,
        monotonic: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        self.channel_id = channel_id
        self.session = session
        self.url = url
        self.options = options
        self.clock = clock
        self.wall = wall
        self.timeout = client_timeout(options.timeout_s)
        self.app_secret = app_secret
        self._access = access_token
        self._refresh = refresh_token
        self._auth_url = options.auth_url.rstrip("/")
        self.tokens = TokenSource(self._fetch_token, clock=monotonic)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> msgspec.Raw:
        """One signed call with the access token (refreshed once on a refusal); its ``data``."""
        url = f"{self.url}{path}"
        signed_path = urlsplit(url).path

        async def call(token: str) -> msgspec.Raw:
            query = {
                "app_key": self.options.app_key,
                "timestamp": str(int(self.wall())),
                "shop_cipher": self.options.shop_cipher,
                **(params or {}),
            }
            query["sign"] = sign_request(self.app_secret, signed_path, query, body or b"")
            headers = {"x-tts-access-token": token, "Content-Type": "application/json"}
            reply = await send(
                self.session,
                method,
                url,
                timeout=self.timeout,
                headers=headers,
                body=body,
                params=query,
            )
            return self._data(reply)

        return await with_token(self.tokens, call)

    def _data(self, reply: HttpReply) -> msgspec.Raw:
        """``data`` of a successful answer, else the error its code (or status) means."""
        now = self.wall()
        try:
            head = decode_head(reply.body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            check(reply, now=now)
            raise Retryable(
                f"TikTok Shop answered HTTP {reply.status} without its envelope: {reply.text()}"
            ) from None
        if head.code == 0 and 200 <= reply.status < 300:
            return head.data
        what = f"TikTok Shop {head.code}: {head.message} (request_id {head.request_id})"
        if head.code in THROTTLE_CODES:
            raise Throttled(what, retry_after=reply.retry_after(now) or DEFAULT_THROTTLE_S)
        if head.code in AUTH_CODES:
            raise Unauthorized(what)
        if head.code in RETRYABLE_CODES:
            raise Retryable(what, retry_after=reply.retry_after(now))
        if head.code in REFUSED_CODES:
            raise ApiError(what, code=head.code)
        if reply.status == 429:
            raise Throttled(what, retry_after=reply.retry_after(now) or DEFAULT_THROTTLE_S)
        check(reply, now=now)  # any other failing status keeps its HTTP meaning
        raise ApiError(what, code=head.code)

    async def _fetch_token(self) -> TokenReply:
        """The configured access token first; after a refusal, a refreshed one (without a
        refresh token the configured one is all there is)."""
        if self._refresh is None or (self._access is not None and self.tokens.fetches == 0):
            assert self._access is not None
            return TokenReply(access_token=self._access, expires_in=CONFIGURED_TOKEN_S)
        reply = await send(
            self.session,
            "GET",
            f"{self._auth_url}/api/v2/token/refresh",
            timeout=self.timeout,
            headers={"Accept": "application/json"},
            params={
                "app_key": self.options.app_key,
                "app_secret": self.app_secret,
                "refresh_token": self._refresh,
                "grant_type": "refresh_token",
            },
        )
        try:
            head = decode_head(reply.body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            check(reply, now=self.wall())
            raise Retryable(
                f"the TikTok Shop token endpoint answered no envelope: {reply.text()}"
            ) from None
        if head.code != 0:
            what = f"TikTok Shop refused the token refresh: {head.code} {head.message}"
            if head.code in THROTTLE_CODES or reply.status == 429:
                raise Throttled(what, retry_after=reply.retry_after() or DEFAULT_THROTTLE_S)
            if head.code in RETRYABLE_CODES or reply.status >= 500:
                raise Retryable(what)
            raise Unauthorized(what)  # a revoked or expired refresh token: an operator's job
        data = decode_data(head.data, TokenData, "token")
        if data.refresh_token:
            self._refresh = data.refresh_token  # TikTok may rotate it; keep the newest
        lifetime = max(1.0, data.access_token_expire_in - self.wall())
        log.info("tiktok_token_refreshed", channel=self.channel_id, expires_in_s=int(lifetime))
        return TokenReply(access_token=data.access_token, expires_in=lifetime)
