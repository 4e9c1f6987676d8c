"""Admin authentication: manager accounts (the users table), signed session cookies, CSRF defences, throttling.

- Passwords are verified with argon2 (`salesbot.accounts`); an unknown username costs as long as a wrong password.
  While no account exists, ADMIN_USERNAME / ADMIN_PASSWORD create the first admin at the first login.
- The session is a cookie signed with SECRET_KEY (itsdangerous), HttpOnly, SameSite=Lax, scoped to /admin,
  `Secure` whenever the request arrived over HTTPS (directly or through a proxy uvicorn trusts), and valid
  for SESSION_MAX_AGE. It carries a fingerprint of the user's password hash, so changing the password ends the
  user's sessions; a disabled user's sessions end at their next request.
- Every state-changing admin request must come from the admin's own origin (Origin, else Referer, checked by
  `SameOriginMiddleware`); salesbot's own action forms also carry a per-session CSRF token.
- Failed logins are counted per client address and per account (`throttle`); over a limit the login answers 429.
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

from salesbot.accounts import service as accounts
from salesbot.admin.throttle import LoginThrottle
from salesbot.audit.actor import Actor
from salesbot.db import unit_of_work
from salesbot.kit.hashing import short_hash
from salesbot.kit.logging import get_logger
from salesbot.models import User
from salesbot.resources import Resources
from salesbot.settings import Settings

log = get_logger(__name__)

SESSION_COOKIE = "salesbot_admin"
SESSION_MAX_AGE = 8 * 3600
CSRF_FIELD = "csrf_token"
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


def current_actor(request: Request) -> Actor:
    """The logged-in manager of this admin request (set by `AdminAuth.authenticate`)."""
    actor: Actor = request.state.actor
    return actor


class AdminAuth(AuthenticationBackend):
    """Login against the users table; `resources` gives the database and Redis (for the login throttle)."""

    def __init__(self, settings: Settings, resources: Callable[[], Resources], *, base_path: str = "/admin") -> None:
        self._secret = settings.auth.secret_key.get_secret_value()
        # Not super().__init__: the session middleware differs (scheme-aware Secure flag, path, lifetime).
        self.middlewares = [
            Middleware(SameOriginMiddleware, public_base_url=settings.public_base_url),
            Middleware(SchemeAwareSessionMiddleware, secret_key=self._secret, path=base_path),
        ]
        self._settings = settings
        self._resources = resources
        # Set by the admin site once it exists (the backend is created first, to be passed to it).
        self.templates: Jinja2Templates | None = None

    def _fingerprint(self, user: User) -> str:
        message = f"user:{user.id}:{user.password_hash}".encode()
        return hmac.new(self._secret.encode("utf-8"), message, hashlib.sha256).hexdigest()[:32]

    async def _verify(self, username: str, password: str) -> User | None:
        async with unit_of_work(self._resources().sessionmaker) as session:
            await accounts.ensure_first_admin(session, self._settings)
            return await accounts.authenticate(session, username, password)

    async def login(self, request: Request) -> Response | bool:
        form = await request.form()
        username, password = form.get("username"), form.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            return False
        address = _client_address(request)
        throttle = LoginThrottle(self._resources().redis)
        try:
            blocked = await throttle.blocked_for(address, username)
            if blocked:
                log.warning("admin.login_throttled", client=short_hash(address))
                return await self._login_error(
                    request, f"Too many failed logins. Try again in {blocked // 60 + 1} min.", 429
                )
            user = await self._verify(username, password)
            if user is None:
                await throttle.record_failure(address, username)
                log.info("admin.login_failed", client=short_hash(address))
                return False
            await throttle.forget_address(address)
        except RedisError:
            # The throttle cannot be enforced without Redis: refuse rather than allow unlimited guessing.
            log.exception("admin.login_unavailable")
            return await self._login_error(request, "Login is temporarily unavailable. Try again shortly.", 503)
        request.session.clear()
        request.session.update(
            {
                "uid": user.id,
                "user": user.username,
                "pw": self._fingerprint(user),
                "csrf": secrets.token_urlsafe(32),
                "at": int(time.time()),
            }
        )
        log.info("admin.login", user=user.id)
        return True

    async def logout(self, request: Request) -> Response | bool:
        request.session.clear()
        return False  # SQLAdmin then redirects to the login page

    async def authenticate(self, request: Request) -> Response | bool:
        session = request.session
        user_id, fingerprint = session.get("uid"), session.get("pw")
        if not isinstance(user_id, int) or not isinstance(fingerprint, str) or not session.get("csrf"):
            return False
        async with self._resources().sessionmaker() as db:
            user = await db.get(User, user_id)
        if user is None or not user.active:
            return False
        if not hmac.compare_digest(fingerprint.encode("ascii", "replace"), self._fingerprint(user).encode("ascii")):
            return False
        request.state.actor = Actor.of(user)
        return True

    async def get_user_id(self, request: Request) -> Any:
        return request.session.get("user")

    async def _login_error(self, request: Request, message: str, status_code: int) -> Response:
        if self.templates is None:
            return PlainTextResponse(message, status_code=status_code)
        return await self.templates.TemplateResponse(
            request, "sqladmin/login.html", {"error": message}, status_code=status_code
        )
