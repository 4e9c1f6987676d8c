"""Checks of URLs that salesbot hands to others (product photos a provider fetches)."""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_URL_LENGTH = 2000


def http_url(value: str) -> str:
    """`value` stripped if it is an absolute http(s) URL with a host and no spaces; else `ValueError` saying why.
    Nothing is fetched: the URL is taken as given."""
    url = value.strip()
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"must be at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not host or any(c.isspace() for c in url):
        raise ValueError("must be an http or https URL with a host")
    return url
