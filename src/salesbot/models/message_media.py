from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from salesbot.db import Base
from salesbot.models._columns import created_at_column


class MessageMedia(Base):
    """A file a customer sent (voice note, photo, document), downloaded by the worker and kept in PostgreSQL so
    every process (admin, API, worker) can serve it. One row per entry of `Message.media`, also when the file was
    refused (too large, type not allowed) or could not be downloaded: then `data` is NULL and `status` says why."""

    __tablename__ = "message_media"
    __table_args__ = (UniqueConstraint("message_id", "position"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    # Index into `Message.media`.
    position: Mapped[int] = mapped_column(Integer, default=0)
    # stored, too_large, type_refused, download_failed
    status: Mapped[str] = mapped_column(String(32))
    content_type: Mapped[str | None] = mapped_column(String(128))
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    filename: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    # Voice notes: transcribed, unconfigured (no transcriber), failed; NULL for other files.
    transcription: Mapped[str | None] = mapped_column(String(32))
    transcript: Mapped[str | None] = mapped_column(Text)
    # The language the transcriber reported (ISO 639-1 when it could be mapped).
    language: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
