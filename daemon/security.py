"""Who may use the API: API tokens, the live page's session cookie, and the browser checks.

``ApiGuard`` is ASGI middleware in front of every route. Three zones, by path:

- open: ``/healthz``, ``/readyz``, ``/metrics`` and ``/webhooks/*`` (signed by their channel);
- page: ``/`` and ``/static/*``: the ``Host`` check; ``GET /?token=...`` trades a valid token for
  the session cookie and redirects to the clean URL (how the start-up link signs a browser in);
- api: ``/v1/*`` (HTTP and the websocket feed): ``Host``, then ``Origin``, then a credential
  (``Authorization: Bearer <token>`` or the page's cookie), then, for a request with a body,
  ``Content-Type: application/json``.

Why each check (a laptop with a browser open, or a shared machine, is the threat model):

- a web page in the browser can send requests to 127.0.0.1 (``text/plain`` POSTs need no CORS
  pre-flight; a websocket has no same-origin rule): ``Origin`` must be this daemon's own origin or
  one of ``[server] allowed_origins``, and a body must be JSON (415 otherwise);
- DNS rebinding makes a hostile name resolve to 127.0.0.1, so the browser sends that name as
  ``Host``: only loopback names, IP literals, ``[server] host`` and ``allowed_hosts`` are served;
- any local user (or process) can connect to the port: ``/v1`` needs a token. Without
  ``[server] token_env`` one is generated on first start into ``<data_dir>/api-token`` (mode
  0600, reused afterwards) and the CLI reads it from there, as notebook servers do.

The cookie never holds a token: its value is ``name.HMAC(token, name)``, so it proves the token
without revealing it, survives a restart and dies with the token (rotation signs every browser
out). It is ``HttpOnly`` (no script reads it) and ``SameSite=Strict`` (no other site's request
carries it); its name holds the port, as cookies are not separated by port. Every comparison with
a secret is ``hmac.compare_digest`` over every known credential (no early exit).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import msgspec
import structlog
from starlette.datastructures import Headers
from starlette.requests import Request, cookie_parser
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from ..core.config import MAIN_TOKEN_NAME, Config, resolve_secret
from ..core.errors import InvsyncError

__all__ = [
    "ANONYMOUS",
    "MIN_TOKEN_CHARS",
    "SECURITY_ERRORS",
    "TOKEN_FILE",
    "ApiGuard",
    "AuthMisconfigured",
    "Credentials",
    "Forbidden",
    "HostNotAllowed",
    "OriginNotAllowed",
    "TokenUnreadable",
    "Unauthorized",
    "UnsupportedMediaType",
    "announce_page",
    "client_token",
    "cookie_name",
    "load_credentials",
    "page_link",
    "principal_of",
    "read_token_file",
    "token_path",
]

log = structlog.get_logger("invsync.http")

#: The generated token's file in the data directory.
TOKEN_FILE = "api-token"
#: Shortest token taken from the environment (a generated one has 43 characters).
MIN_TOKEN_CHARS = 16
#: Who acts when ``[server] auth = "none"`` (no credential to name anyone).
ANONYMOUS = "anonymous"
_SESSION_CONTEXT = b"invsync page session v1\x00"
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# --- errors ------------------------------------------------------------------------------------


class Unauthorized(InvsyncError):
    """No credential (bearer header or page session) where one is required."""

    code = "UNAUTHORIZED"
    http_status = 401


class Forbidden(InvsyncError):
    """A credential that is not one of the daemon's."""

    code = "FORBIDDEN"
    http_status = 403


class HostNotAllowed(InvsyncError):
    """A ``Host`` header this daemon does not answer to (DNS rebinding defence)."""

    code = "HOST_NOT_ALLOWED"
    http_status = 403


class OriginNotAllowed(InvsyncError):
    """A browser request from another web origin (another site's page)."""

    code = "ORIGIN_NOT_ALLOWED"
    http_status = 403


class UnsupportedMediaType(InvsyncError):
    """A ``/v1`` request body that is not declared ``Content-Type: application/json``."""

    code = "UNSUPPORTED_MEDIA_TYPE"
    http_status = 415


class AuthMisconfigured(InvsyncError):
    """The daemon's own credentials cannot be loaded (a variable not set, a weak token, a token
    file others can read): at start this stops the daemon; after a reload ``/v1`` answers 500."""

    code = "AUTH_MISCONFIGURED"
    http_status = 500


class TokenUnreadable(InvsyncError):
    """The CLI cannot read the daemon's token file (another user's daemon, or bad permissions)."""

    code = "TOKEN_UNREADABLE"
    http_status = 403


#: Code -> type of every error of this module (the client maps answers back by code).
SECURITY_ERRORS: dict[str, type[InvsyncError]] = {
    cls.code: cls
    for cls in (
        Unauthorized,
        Forbidden,
        HostNotAllowed,
        OriginNotAllowed,
        UnsupportedMediaType,
        AuthMisconfigured,
        TokenUnreadable,
    )
}


# --- credentials -------------------------------------------------------------------------------


def token_path(config: Config) -> Path:
    """Where the generated API token lives: ``<[redis] data_dir>/api-token``."""
    return config.resolve_path(config.redis.data_dir) / TOKEN_FILE


def _check_strength(token: str, where: str) -> str:
    if len(token) < MIN_TOKEN_CHARS:
        raise AuthMisconfigured(
            f"{where} holds a {len(token)}-character token; use at least {MIN_TOKEN_CHARS} "
            "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


def read_token_file(path: Path) -> str:
    """The token in ``path``; AuthMisconfigured when others may read it or it is too short.
    FileNotFoundError and PermissionError propagate."""
    mode = path.stat().st_mode
    if mode & 0o077:
        raise AuthMisconfigured(
            f"{path} may be read by other users (mode {mode & 0o777:o}): chmod 600 it, or "
            "delete it and restart to get a new token"
        )
    return _check_strength(path.read_text().strip(), str(path))


def ensure_token_file(path: Path) -> str:
    """The token in ``path``, generated there (mode 0600) when the file does not exist yet.

    The file appears whole or not at all: written to a private temporary name, then linked into
    place (a link never replaces an existing file, so two starts cannot race each other).
    """
    with contextlib.suppress(FileNotFoundError):
        return read_token_file(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
        try:
            os.link(temp, path)
        except FileExistsError:  # another start won: use its token
            return read_token_file(path)
    finally:
        temp.unlink(missing_ok=True)
    log.info("api_token_created", path=str(path))
    return token


@dataclass(frozen=True, slots=True)
class Credentials:
    """The daemon's API tokens, each with the name its holder acts under (``by``)."""

    tokens: tuple[tuple[str, bytes], ...]

    def name_for_token(self, token: str) -> str | None:
        """The name of ``token``, or None; compares against every token in constant time."""
        given = token.encode()
        found = None
        for name, secret in self.tokens:
            if hmac.compare_digest(given, secret):
                found = name
        return found

    def session_value(self, name: str) -> str:
        """The page-session cookie's value for the token called ``name``."""
        secret = dict(self.tokens)[name]
        mac = hmac.new(secret, _SESSION_CONTEXT + name.encode(), hashlib.sha256).hexdigest()
        return f"{name}.{mac}"

    def name_for_session(self, value: str) -> str | None:
        """The name a page-session cookie value was made for, or None."""
        given = value.encode()
        found = None
        for name, _ in self.tokens:
            if hmac.compare_digest(given, self.session_value(name).encode()):
                found = name
        return found


def load_credentials(config: Config, *, create: bool = False) -> Credentials | None:
    """The tokens ``[server]`` configures (None for ``auth = "none"``); AuthMisconfigured names
    the key of one that cannot be had. ``create``: generate the token file if it is missing."""
    server = config.server
    if server.auth == "none":
        return None
    tokens: list[tuple[str, str]] = []
    if server.token_env is not None:
        main = resolve_secret(server.token_env)
        if main is None:
            raise AuthMisconfigured(
                f"server.token_env names ${server.token_env}, which is not set in the daemon's "
                "environment"
            )
        tokens.append((MAIN_TOKEN_NAME, _check_strength(main, f"${server.token_env}")))
    else:
        path = token_path(config)
        try:
            main = ensure_token_file(path) if create else read_token_file(path)
        except OSError as exc:
            raise AuthMisconfigured(
                f"cannot read the API token {path}: {exc.strerror or exc}"
            ) from exc
        tokens.append((MAIN_TOKEN_NAME, main))
    for name, env in sorted(server.tokens.items()):
        value = resolve_secret(env)
        if value is None:
            raise AuthMisconfigured(f"server.tokens.{name} names ${env}, which is not set")
        tokens.append((name, _check_strength(value, f"${env} (server.tokens.{name})")))
    seen: dict[str, str] = {}
    for name, value in tokens:
        if value in seen:
            raise AuthMisconfigured(f"tokens {seen[value]!r} and {name!r} are the same secret")
        seen[value] = name
    return Credentials(tokens=tuple((name, value.encode()) for name, value in tokens))


def client_token(config: Config) -> str | None:
    """The token the CLI sends to the daemon of ``config``: ``$INVSYNC_TOKEN`` when set (e.g. a
    named token), else the variable ``token_env`` names, else the generated token file (None
    while the daemon never started). TokenUnreadable when the file exists but cannot be read."""
    if config.server.auth == "none":
        return None
    override = resolve_secret("INVSYNC_TOKEN")
    if override is not None:
        return override
    if config.server.token_env is not None:
        return resolve_secret(config.server.token_env)
    path = token_path(config)
    try:
        return read_token_file(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except PermissionError as exc:
        raise TokenUnreadable(
            f"cannot read the API token {path}: permission denied (run as the daemon's user, "
            "or set $INVSYNC_TOKEN)"
        ) from exc
    except OSError as exc:
        raise TokenUnreadable(
            f"cannot read the API token {path}: {exc.strerror or exc}"
        ) from exc
    except AuthMisconfigured as exc:
        raise TokenUnreadable(exc.message) from exc


def cookie_name(port: int) -> str:
    """The page-session cookie of the daemon on ``port`` (cookies are shared across ports)."""
    return f"invsync-session-{port}"


def _connect_host(host: str) -> str:
    if host in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def page_link(config: Config, port: int) -> str:
    """The live page's sign-in link: ``http://host:port/?token=...`` (the plain URL when
    ``auth = "none"``)."""
    base = f"http://{_connect_host(config.server.host)}:{port}/"
    credentials = load_credentials(config)
    if credentials is None:
        return base
    token = credentials.tokens[0][1].decode()
    return f"{base}?token={quote(token, safe='')}"


def announce_page(config: Config, port: int, *, interactive: bool | None = None) -> None:
    """Log where the live page is. In a terminal (``make run``) the sign-in link with the token
    is printed; otherwise (journald, files) only the plain URL and where the token is kept, so
    logs never hold the token."""
    if interactive is None:
        interactive = sys.stdout.isatty()
    base = f"http://{_connect_host(config.server.host)}:{port}/"
    if config.server.auth == "none":
        log.info("live_page", url=base)
    elif interactive:
        log.info("live_page", url=page_link(config, port), note="this link signs the browser in")
    else:
        where = (
            f"${config.server.token_env}"
            if config.server.token_env
            else str(token_path(config))
        )
        log.info("live_page", url=base, sign_in=f"open {base}?token=<the token in {where}>")


# --- the middleware ----------------------------------------------------------------------------


def _host_name(value: str) -> str:
    """``Host`` header -> lower-case name without port or brackets (``[::1]:80`` -> ``::1``)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _default_port(scheme: str) -> int:
    return 443 if scheme in ("https", "wss") else 80


def _same_origin(origin: str, host: str | None) -> bool:
    """Whether ``origin`` names the host and port the request was sent to (its ``Host``)."""
    if not host:
        return False
    try:
        parts = urlsplit(origin)
        target = urlsplit(f"{parts.scheme}://{host}")
        origin_port = parts.port or _default_port(parts.scheme)
        host_port = target.port or _default_port(parts.scheme)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and parts.hostname is not None
        and parts.hostname == target.hostname
        and origin_port == host_port
    )


class _Policy:
    """The checks for one config (rebuilt when a reload replaces it)."""

    def __init__(self, config: Config, *, create: bool = False) -> None:
        server = config.server
        self.credentials = load_credentials(config, create=create)
        names = {*_LOOPBACK_NAMES, *(h.lower() for h in server.allowed_hosts)}
        if server.host not in ("0.0.0.0", "::", ""):
            names.add(_host_name(server.host) if not _is_ip(server.host) else server.host)
        self.hosts = frozenset(names)
        self.origins = frozenset(o.lower() for o in server.allowed_origins)
        self.token_hint = (
            f"${server.token_env}" if server.token_env else f"the file {token_path(config)}"
        )

    def host_error(self, headers: Headers) -> InvsyncError | None:
        raw = headers.get("host")
        if not raw:
            return HostNotAllowed("a Host header is required")
        name = _host_name(raw)
        if name in self.hosts or name.endswith(".localhost") or _is_ip(name):
            return None
        return HostNotAllowed(
            f"this daemon does not answer to the host name {name!r} (loopback names, IP "
            "addresses, [server] host and [server] allowed_hosts only)"
        )

    def origin_error(self, headers: Headers) -> InvsyncError | None:
        origin = headers.get("origin")
        if origin is None:
            site = headers.get("sec-fetch-site")
            if site in ("cross-site", "same-site"):
                return OriginNotAllowed(f"a {site} browser request without an Origin header")
            return None
        if origin.lower() in self.origins or _same_origin(origin.lower(), headers.get("host")):
            return None
        return OriginNotAllowed(
            f"requests from the web origin {origin!r} are refused (add it to "
            "[server] allowed_origins if it is yours)"
        )

    def principal(self, headers: Headers, port: int) -> str | InvsyncError:
        """The caller's name, or why it has none."""
        credentials = self.credentials
        if credentials is None:
            return ANONYMOUS
        given = headers.get("authorization")
        if given:
            scheme, _, token = given.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                return Unauthorized("expected an Authorization header of the form: Bearer <token>")
            name = credentials.name_for_token(token)
            return name if name is not None else Forbidden("wrong bearer token")
        session = cookie_parser(headers.get("cookie", "")).get(cookie_name(port))
        if session:
            name = credentials.name_for_session(session)
            if name is not None:
                return name
            return Unauthorized(
                "the page's session is no longer valid (the token changed): open the sign-in "
                "link the daemon printed at start-up again"
            )
        return Unauthorized(
            "this endpoint needs Authorization: Bearer <token> (the token is in "
            f"{self.token_hint}; the invsync commands read it from there)"
        )


def _zone(path: str) -> str:
    if path == "/v1" or path.startswith("/v1/"):
        return "api"
    if path == "/" or path.startswith("/static/"):
        return "page"
    return "open"


def _error_response(exc: InvsyncError) -> Response:
    headers = {"Cache-Control": "no-store"}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="invsync"'
    return Response(
        msgspec.json.encode(exc.to_json()),
        status_code=exc.http_status,
        media_type="application/json",
        headers=headers,
    )


async def deny(scope: Scope, receive: Receive, send: Send, error: InvsyncError) -> None:
    """Answer ``error`` as the spec's JSON error: an HTTP response, or a refused handshake."""
    if scope["type"] == "http":
        await _error_response(error)(scope, receive, send)
        return
    websocket = WebSocket(scope, receive, send)
    if "websocket.http.response" in scope.get("extensions", {}):
        await websocket.send_denial_response(_error_response(error))
    else:  # the server cannot send an HTTP answer to a handshake: close (policy violation)
        await websocket.close(code=1008, reason=error.code)


class ApiGuard:
    """ASGI middleware: the ``Host``/``Origin``/credential/``Content-Type`` checks of the module
    docstring, and the page's sign-in link. The caller's name goes to ``principal_of``."""

    def __init__(self, app: ASGIApp, config: Any) -> None:
        """``config`` returns the config in force (read on every request: reloads replace it)."""
        self.app = app
        self._config = config
        self._seen: Config | None = None
        self._policy: _Policy | InvsyncError | None = None

    @classmethod
    def check_config(cls, config: Config) -> None:
        """Load the credentials ``config`` needs, generating the token file on first start;
        AuthMisconfigured when they cannot be had (the daemon must not start)."""
        _Policy(config, create=True)

    def policy(self) -> _Policy | InvsyncError:
        config: Config = self._config()
        if config is not self._seen or self._policy is None:
            try:
                self._policy = _Policy(config)
            except InvsyncError as exc:
                log.error("http_auth_misconfigured", error=exc.message)
                self._policy = exc
            self._seen = config
        return self._policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        zone = _zone(scope.get("path", ""))
        if zone == "open":
            await self.app(scope, receive, send)
            return
        policy = self.policy()
        if isinstance(policy, InvsyncError):
            await deny(scope, receive, send, policy)
            return
        headers = Headers(scope=scope)
        error = policy.host_error(headers)
        if error is None and zone == "page":
            signing_in = scope["type"] == "http" and scope["method"] in ("GET", "HEAD")
            if signing_in and scope["path"] == "/" and policy.credentials:
                token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
                if token:
                    await self._sign_in(scope, receive, send, policy, token[-1])
                    return
            await self.app(scope, receive, send)
            return
        if error is None:
            error = policy.origin_error(headers)
        principal: str | InvsyncError = error or policy.principal(headers, _port(scope))
        if isinstance(principal, InvsyncError):
            await deny(scope, receive, send, principal)
            return
        if scope["type"] == "http" and scope["method"] not in _SAFE_METHODS:
            media = headers.get("content-type", "").partition(";")[0].strip().lower()
            if media != "application/json":
                shown = f"{media!r}" if media else "none"
                await deny(
                    scope,
                    receive,
                    send,
                    UnsupportedMediaType(
                        f"{scope['method']} {scope['path']} takes Content-Type: "
                        f"application/json (got {shown})"
                    ),
                )
                return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _sign_in(
        self, scope: Scope, receive: Receive, send: Send, policy: _Policy, token: str
    ) -> None:
        """``GET /?token=``: a valid token becomes the session cookie, then the clean URL."""
        assert policy.credentials is not None
        name = policy.credentials.name_for_token(token)
        if name is None:
            await deny(
                scope,
                receive,
                send,
                Forbidden(
                    "the link's token is not this daemon's (it may have been rotated): use the "
                    "link printed at start-up"
                ),
            )
            return
        response = RedirectResponse("./", status_code=303)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.set_cookie(
            cookie_name(_port(scope)),
            policy.credentials.session_value(name),
            path="/",
            httponly=True,
            samesite="strict",
        )
        log.info("page_signed_in", by=name)
        await response(scope, receive, send)


def _port(scope: Scope) -> int:
    server = scope.get("server")
    return int(server[1]) if server and server[1] is not None else 0


def principal_of(request: Request | Mapping[str, Any]) -> str:
    """The name the request's credential acts under (``ANONYMOUS`` without auth)."""
    scope = request.scope if isinstance(request, Request) else request
    name = scope.get("state", {}).get("principal")
    return name if isinstance(name, str) else ANONYMOUS
