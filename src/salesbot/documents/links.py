"""Signed, expiring links to documents, for providers that fetch a file by URL (WhatsApp document messages).

A link names one quote and an expiry and carries an HMAC-SHA256 (SECRET_KEY) over both, so it cannot be turned
into a link to another quote or a later expiry; there is no listing. The REST API serves the same documents to
holders of an API token.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from salesbot.kit.errors import AppError
from salesbot.settings import Settings

QUOTE_PATH = "/documents/quotes/{quote_id}.pdf"


class LinkRefusedError(AppError):
    status_code = 403


def _signature(settings: Settings, quote_id: int, expires: int) -> str:
    key = settings.auth.secret_key.get_secret_value().encode()
    return hmac.new(key, f"quote-pdf:{quote_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def signed_quote_url(settings: Settings, quote_id: int, *, now: datetime) -> str:
    expires = int((now + timedelta(days=settings.document_link_days)).timestamp())
    path = QUOTE_PATH.format(quote_id=quote_id)
    signature = _signature(settings, quote_id, expires)
    return f"{settings.public_base_url.rstrip('/')}{path}?expires={expires}&signature={signature}"


def verify_quote_link(settings: Settings, quote_id: int, expires: str, signature: str, *, now: datetime) -> None:
    """Nothing, or `LinkRefusedError`: a missing or changed quote id, expiry or signature, or an expired link."""
    if not expires.isdigit() or len(expires) > 12:
        raise LinkRefusedError("invalid document link")
    expected = _signature(settings, quote_id, int(expires))
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "surrogateescape")):
        raise LinkRefusedError("invalid document link")
    if now.timestamp() > int(expires):
        raise LinkRefusedError("this document link has expired")
