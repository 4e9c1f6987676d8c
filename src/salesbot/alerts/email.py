"""Alerts by e-mail over SMTP (`SMTP_*`), with STARTTLS when asked and a login when a user is set.

The Message-ID is derived from the alert's event key, so a repeat of a send whose answer was lost is the same
message to mail clients (they show it once). smtplib blocks: it runs in a thread.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from salesbot.alerts.base import AlertMessage, PermanentAlertError, RetryableAlertError
from salesbot.kit.hashing import short_hash
from salesbot.models import AlertChannel
from salesbot.settings import AlertSettings

TIMEOUT_SECONDS = 20.0


class EmailSender:
    def __init__(self, settings: AlertSettings) -> None:
        self._settings = settings

    @property
    def channel(self) -> AlertChannel:
        return AlertChannel.EMAIL

    def compose(self, message: AlertMessage) -> EmailMessage:
        settings = self._settings
        email = EmailMessage()
        email["Subject"] = f"[salesbot] {message.title} (conversation #{message.conversation_id})"
        email["From"] = settings.smtp_from
        email["To"] = ", ".join(settings.smtp_to)
        email["Date"] = format_datetime(message.created_at)
        domain = settings.smtp_from.rpartition("@")[2] or "salesbot"
        email["Message-ID"] = f"<alert-{short_hash(message.event_key, length=32)}@{domain}>"
        email.set_content(message.text())
        return email

    async def send(self, message: AlertMessage, *, attempted_before: datetime | None) -> None:
        await asyncio.to_thread(self._send, self.compose(message))

    async def check(self) -> str:
        """Connect, STARTTLS and log in as a send would, then NOOP: no mail is sent."""
        await asyncio.to_thread(self._send, None)
        return f"{self._settings.smtp_host}:{self._settings.smtp_port} to {len(self._settings.smtp_to)} recipient(s)"

    def _send(self, email: EmailMessage | None) -> None:
        settings = self._settings
        try:
            with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=TIMEOUT_SECONDS) as smtp:
                if settings.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if settings.smtp_user:
                    smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
                if email is None:
                    smtp.noop()
                else:
                    smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = {code for code, _ in exc.recipients.values()}
            raise _by_code(min(codes), "recipients refused") from None
        except smtplib.SMTPResponseException as exc:
            # Authentication failures, refused senders and data: the server's 4xx is temporary, 5xx is final.
            text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            raise _by_code(exc.smtp_code, text[:300]) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentAlertError(f"smtp: {exc}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise RetryableAlertError(f"smtp: {type(exc).__name__}") from None


def _by_code(code: int, text: str) -> PermanentAlertError | RetryableAlertError:
    if 400 <= code < 500:
        return RetryableAlertError(f"smtp {code}: {text}")
    return PermanentAlertError(f"smtp {code}: {text}")
