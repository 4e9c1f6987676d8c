"""/docs and /redoc work on a closed network: every script and stylesheet they load is served by the app."""

from __future__ import annotations

import re

import httpx
import pytest

from salesbot.app import create_app
from salesbot.settings import Settings


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_documentation_pages_load_only_local_assets(settings: Settings, page: str) -> None:
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        html = (await client.get(page)).text
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(r"url: ?['\"]([^'\"]+)", html)
        assert assets
        remote = [url for url in assets if url.startswith(("http://", "https://", "//"))]
        assert remote == []
        for url in assets:
            response = await client.get(url)
            assert response.status_code == 200, url
            assert response.content, url
