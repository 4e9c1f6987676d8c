"""Fetching a customer's file over HTTP within the media limits: the part every provider's `download_media` shares.

The declared type and length are checked before the body is read, and the body is streamed so a file that lies
about its length (or declares none) is cut off at the limit instead of filling memory.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from salesbot.messaging.base import DownloadedMedia, MediaLimits, MediaRefusedError, MediaUnavailableError


def _filename(response: httpx.Response) -> str | None:
    disposition = response.headers.get("content-disposition", "")
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename" and value:
            return value.strip().strip('"')[:200] or None
    name = response.url.path.rsplit("/", 1)[-1]
    return name[:200] if "." in name else None


async def fetch_limited(
    http: httpx.AsyncClient,
    url: str,
    *,
    limits: MediaLimits,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | None = None,
    content_type_hint: str | None = None,
) -> DownloadedMedia:
    """GET `url` (redirects followed: Twilio answers its media URL with a 307 to storage) within `limits`."""
    if not url.startswith(("https://", "http://")):
        raise MediaUnavailableError("not an http(s) URL")
    try:
        async with http.stream(
            "GET", url, headers=headers, auth=auth, follow_redirects=True, timeout=limits.timeout_seconds
        ) as response:
            if response.status_code >= 400:
                raise MediaUnavailableError(f"HTTP {response.status_code}")
            content_type = response.headers.get("content-type") or content_type_hint or "application/octet-stream"
            content_type = content_type.split(";")[0].strip().lower()
            if not limits.allows(content_type):
                raise MediaRefusedError("type_refused", content_type, content_type=content_type)
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limits.max_bytes:
                raise MediaRefusedError("too_large", f"{declared} bytes", content_type=content_type)
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limits.max_bytes:
                    raise MediaRefusedError(
                        "too_large", f"more than {limits.max_bytes} bytes", content_type=content_type
                    )
            return DownloadedMedia(bytes(body), content_type, _filename(response))
    except httpx.HTTPError as exc:
        raise MediaUnavailableError(type(exc).__name__) from exc
