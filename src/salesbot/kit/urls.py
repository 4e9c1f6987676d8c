"""Checks of URLs that salesbot hands to others (product photos a provider fetches)."""

from __future__ import annotations

import re

MAX_URL_LENGTH = 2000
# One rule for the OpenAPI schema (an ECMA-262 pattern clients and schemathesis read) and for validation: an
# http(s) scheme, a host of URI characters, an optional port, then printable ASCII without spaces. A URL with other
# characters must be percent-encoded, as RFC 3986 asks.
HTTP_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~!$&'()*+,;=%-]+(?::[0-9]*)?(?:[/?#][!-~]*)?$"
_HTTP_URL = re.compile(HTTP_URL_PATTERN)


def http_url(value: str) -> str:
    """`value` if it is an absolute http(s) URL by `HTTP_URL_PATTERN`; else `ValueError` saying why.
    Nothing is fetched: the URL is taken as given."""
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"must be at most {MAX_URL_LENGTH} characters")
    # `search`, as JSON Schema validators apply a pattern: the schema and this check accept the same strings (a
    # `$` also matches before one final newline, which is dropped).
    if not _HTTP_URL.search(value):
        raise ValueError("must be an http or https URL with a host, in printable ASCII without spaces")
    return value.removesuffix("\n")
