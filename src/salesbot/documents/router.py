"""`GET /documents/quotes/{id}.pdf?expires=...&signature=...`: a quotation PDF behind a signed, expiring link."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from salesbot.dependencies import SessionDep, SettingsDep
from salesbot.documents.links import verify_quote_link
from salesbot.documents.service import quote_pdf

router = APIRouter(prefix="/documents", tags=["documents"])


def pdf_response(filename: str, content: bytes) -> Response:
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{filename}"', "Cache-Control": "private, no-store"},
    )


@router.get(
    "/quotes/{quote_id:int}.pdf",
    summary="A quotation PDF, for whoever holds its signed link (providers fetching a document message)",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, 403: {"description": "Invalid or expired link"}},
)
async def signed_quote_pdf(
    session: SessionDep,
    settings: SettingsDep,
    quote_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    # Checked by `verify_quote_link`, not by validation: a link with a missing or mangled part is refused (403)
    # like a forged one, never described as a malformed request.
    expires: Annotated[str, Query(max_length=20, description="unix time the link expires")] = "",
    signature: Annotated[str, Query(max_length=64, description="HMAC-SHA256 of the link")] = "",
) -> Response:
    verify_quote_link(settings, quote_id, expires, signature, now=datetime.now(UTC))
    document, content = await quote_pdf(session, quote_id, settings)
    return pdf_response(document.filename, content)
