"""The admin's session cookie and login throttle on the production entry point: `salesbot serve` (uvicorn with
`--forwarded-allow-ips`, default 127.0.0.1) behind a TLS-terminating proxy on this machine.

tests/admin covers the same rules in-process; this proves the served process gets them right: the cookie is
HttpOnly and SameSite=Lax always, Secure when the proxy says the client came over HTTPS, and repeated failed
logins are refused with 429.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.system.conftest import MakeSystem
from tests.system.harness import ADMIN_PASSWORD

pytestmark = pytest.mark.system


def cookie_flags(response: httpx.Response) -> set[str]:
    [cookie] = [value for name, value in response.headers.multi_items() if name == "set-cookie"]
    return {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}


async def test_admin_cookie_and_login_throttle_on_the_served_process(
    make_system: MakeSystem, reliability: dict[str, Any]
) -> None:
    async with make_system() as system:
        await system.start(workers=0)
        url = system.api.url
        async with httpx.AsyncClient(base_url=url, follow_redirects=False) as client:
            form = {"username": "admin", "password": ADMIN_PASSWORD}
            plain = await client.post("/admin/login", data=form, headers={"origin": url})
            proxied = await client.post(
                "/admin/login",
                data=form,
                headers={
                    "origin": "https://bot.example.test",
                    "host": "bot.example.test",
                    "x-forwarded-proto": "https",
                    "x-forwarded-for": "203.0.113.7",
                },
            )
            assert plain.status_code == proxied.status_code == 302
            assert {"httponly", "samesite", "path", "max-age"} <= cookie_flags(plain)
            assert "secure" not in cookie_flags(plain)
            assert {"httponly", "samesite", "secure"} <= cookie_flags(proxied)
            assert "samesite=lax" in proxied.headers["set-cookie"].lower()

            statuses = []
            for _ in range(12):
                wrong = {"username": "admin", "password": "not-the-password"}
                statuses.append((await client.post("/admin/login", data=wrong, headers={"origin": url})).status_code)
            # Past the limit even the right password is refused until the window ends.
            locked = await client.post("/admin/login", data=form, headers={"origin": url})
        assert statuses[-1] == 429
        assert locked.status_code == 429
        reliability["failed_logins_before_429"] = statuses.index(429)
