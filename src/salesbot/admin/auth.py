"""Admin authentication: one manager account from settings, signed session cookies, CSRF defences, login throttling.

- Credentials are compared in constant time (both fields always compared).
- The session is a cookie signed with SECRET_KEY (itsdangerous), HttpOnly, SameSite=Lax, scoped to /admin,
  `Secure` whenever the request arrived over HTTPS (directly or through a proxy uvicorn trusts), and valid
  for SESSION_MAX_AGE. It carries a fingerprint of ADMIN_PASSWORD, so changing the password ends every session.
- Every state-changing admin request must come from the admin's own origin (Origin, else Referer, checked by
  `SameOriginMiddleware`); salesbot's own action forms also carry a per-session CSRF token.
- Failed logins are counted in Redis per client address and per username (fixed window, shared by every API
  process); over the limit the login answers 429 until the window ends.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from redis.exceptions import RedisError
from sqladmin.authentication import AuthenticationBackend
from sqladmin.templating import Jinja2Templates
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from salesbot.kit.hashing import short_hash
from salesbot.kit.logging import get_logger
from salesbot.resources import Resources
from salesbot.settings import Settings

log = get_logger(__name__)

SESSION_COOKIE = "salesbot_admin"
SESSION_MAX_AGE = 8 * 3600
CSRF_FIELD = "csrf_token"
LOGIN_WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_CLIENT = 10
MAX_FAILURES_PER_USERNAME = 50
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class SchemeAwareSessionMiddleware:
    """Starlette's signed-cookie session, with `Secure` added for requests that arrived over HTTPS.

    A fixed `https_only` would either leak the cookie over plain HTTP in production or break local HTTP use.
    """

    def __init__(self, app: ASGIApp, *, secret_key: str, path: str) -> None:
        options: dict[str, Any] = {
            "secret_key": secret_key,
            "session_cookie": SESSION_COOKIE,
            "max_age": SESSION_MAX_AGE,
            "path": path,
            "same_site": "lax",
        }
        self.plain = SessionMiddleware(app, https_only=False, **options)
        self.secure = SessionMiddleware(app, https_only=True, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.secure if scope.get("scheme") in ("https", "wss") else self.plain
        await handler(scope, receive, send)


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default_port else "")


class SameOriginMiddleware:
    """Refuses state-changing admin requests whose Origin (or, without one, Referer) is not the admin itself.

    This protects every admin form, SQLAdmin's own create/edit/delete included, against cross-site requests
    without needing a token in templates we do not own (OWASP: "verifying origin with standard headers").
    """

    def __init__(self, app: ASGIApp, *, public_base_url: str) -> None:
        self.app = app
        self.public_origin = _origin(public_base_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in _UNSAFE_METHODS:
            headers = Headers(scope=scope)
            claimed = headers.get("origin") or headers.get("referer") or ""
            origin = _origin(claimed) if claimed != "null" else None
            own = _origin(f"{scope.get('scheme', 'http')}://{headers.get('host', '')}")
            if origin is None or origin not in {own, self.public_origin}:
                log.warning("admin.cross_origin_refused", method=scope["method"], path=scope.get("path"))
                response = PlainTextResponse("cross-origin request refused", status_code=403)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def csrf_token(request: Request) -> str:
    token: str = request.session.get("csrf", "")
    return token


def csrf_valid(request: Request, submitted: object) -> bool:
    expected = csrf_token(request)
    return bool(expected) and isinstance(submitted, str) and hmac.compare_digest(submitted, expected)


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class AdminAuth(AuthenticationBackend):
    """Login with ADMIN_USERNAME / ADMIN_PASSWORD; `resources` gives Redis for the login throttle."""

    def __init__(self, settings: Settings, resources: Callable[[], Resources], *, base_path: str = "/admin") -> None:
        secret = settings.auth.secret_key.get_secret_value()
        # Not super().__init__: the session middleware differs (scheme-aware Secure flag, path, lifetime).
        self.middlewares = [
            Middleware(SameOriginMiddleware, public_base_url=settings.public_base_url),
            Middleware(SchemeAwareSessionMiddleware, secret_key=secret, path=base_path),
        ]
        self._username = settings.auth.admin_username
        self._password = settings.auth.admin_password.get_secret_value()
        self._fingerprint = hmac.new(
            secret.encode("utf-8"), b"admin-password:" + self._password.encode("utf-8"), hashlib.sha256
        ).hexdigest()[:32]
        self._resources = resources
        # Set by the admin site once it exists (the backend is created first, to be passed to it).
        self.templates: Jinja2Templates | None = None

    def _credentials_match(self, username: str, password: str) -> bool:
        # Both comparisons always run: the timing does not tell which field was wrong.
        user_ok = hmac.compare_digest(username.encode("utf-8", "surrogateescape"), self._username.encode("utf-8"))
        password_ok = hmac.compare_digest(password.encode("utf-8", "surrogateescape"), self._password.encode("utf-8"))
        return user_ok & password_ok

    def _throttle_keys(self, request: Request, username: str) -> tuple[str, str]:
        return (
            f"admin:login:fail:client:{short_hash(_client_address(request))}",
            f"admin:login:fail:user:{short_hash(username.casefold())}",
        )

    async def _blocked_for(self, request: Request, username: str) -> int:
        """Seconds until another attempt is allowed (0: allowed now)."""
        redis = self._resources().redis
        client_key, user_key = self._throttle_keys(request, username)
        client_failures, user_failures = await redis.mget(client_key, user_key)
        if int(client_failures or 0) >= MAX_FAILURES_PER_CLIENT:
            return max(int(await redis.ttl(client_key)), 1)
        if int(user_failures or 0) >= MAX_FAILURES_PER_USERNAME:
            return max(int(await redis.ttl(user_key)), 1)
        return 0

    async def _record_failure(self, request: Request, username: str) -> None:
        redis = self._resources().redis
        async with redis.pipeline(transaction=True) as pipe:
            for key in self._throttle_keys(request, username):
                # The window starts at the first failure (INCR keeps the TTL; Redis 6.2 has no EXPIRE NX).
                pipe.set(key, 0, ex=LOGIN_WINDOW_SECONDS, nx=True)
                pipe.incr(key)
            await pipe.execute()

    async def _clear_failures(self, request: Request, username: str) -> None:
        await self._resources().redis.delete(*self._throttle_keys(request, username))

    async def login(self, request: Request) -> Response | bool:
        form = await request.form()
        username, password = form.get("username"), form.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            return False
        try:
            blocked = await self._blocked_for(request, username)
            if blocked:
                log.warning("admin.login_throttled", client=short_hash(_client_address(request)))
                return await self._login_error(
                    request, f"Too many failed logins. Try again in {blocked // 60 + 1} min.", 429
                )
            if not self._credentials_match(username, password):
                await self._record_failure(request, username)
                log.info("admin.login_failed", client=short_hash(_client_address(request)))
                return False
            await self._clear_failures(request, username)
        except RedisError:
            # The throttle cannot be enforced without Redis: refuse rather than allow unlimited guessing.
            log.exception("admin.login_unavailable")
            return await self._login_error(request, "Login is temporarily unavailable. Try again shortly.", 503)
        request.session.clear()
        request.session.update(
            {
                "user": self._username,
                "pw": self._fingerprint,
                "csrf": secrets.token_urlsafe(32),
                "at": int(time.time()),
            }
        )
        log.info("admin.login", user=self._username)
        return True

    async def logout(self, request: Request) -> Response | bool:
        request.session.clear()
        return False  # SQLAdmin then redirects to the login page

    async def authenticate(self, request: Request) -> Response | bool:
        session = request.session
        user, fingerprint = session.get("user"), session.get("pw")
        if not isinstance(user, str) or not isinstance(fingerprint, str) or not session.get("csrf"):
            return False
        return hmac.compare_digest(user.encode("utf-8"), self._username.encode("utf-8")) & hmac.compare_digest(
            fingerprint.encode("ascii", "replace"), self._fingerprint.encode("ascii")
        )

    async def get_user_id(self, request: Request) -> Any:
        return request.session.get("user")

    async def _login_error(self, request: Request, message: str, status_code: int) -> Response:
        if self.templates is None:
            return PlainTextResponse(message, status_code=status_code)
        return await self.templates.TemplateResponse(
            request, "sqladmin/login.html", {"error": message}, status_code=status_code
        )
