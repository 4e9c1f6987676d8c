"""PII masking cost: `PiiMasker.mask` and the log filter per text, against a baseline in the same run.

    .venv/bin/python bench/bench_pii.py

The baseline is one pass of the e-mail pattern over the same text (the cheapest thing the masker must do
anyway), so the ratio says what finding and validating phone numbers adds, on this machine, now. Texts: sales
chat messages (with and without numbers) and 10,000-character adversarial inputs (the inbound limit), which
must stay linear. Numbers, not pass/fail.

A second table formats uvicorn's access record for a few client addresses as the log does (only what the client
typed is scanned for phone numbers), against scanning the whole line, as before `kit.access_log.access_message`:
a real client address has the digits of a phone number.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from salesbot.agent.pii import EMAIL, PiiMasker
from salesbot.kit.access_log import ACCESS_LOGGER, SecretMaskingFilter
from salesbot.kit.logging import KeyValueFormatter, redact

CHAT = [
    "Hi, I need 2 x HP LaserJet M211dw at 649.00 AED, order 2024-118, delivery by 21.11.2026 10:30 please.",
    "My number is +971 50 123 4567, or write to wa.me/971501234567, or тел79011234567.",
    "رقمي ٠٥٠١٢٣٤٥٦٧ وأريد ٣ طابعات",
    "Do you have the Dell Latitude 5440 with 16 GB? Budget 1 249 000 ₽, 25 units, since 2019-2026.",
    "ok thanks",
]
ADVERSARIAL = {
    "digits and spaces": "1 " * 5000,
    "digit pairs": "12 " * 3333,
    "one long number": "7" * 10000,
    "zeros and dashes": "0-" * 5000,
}


def per_call_ms(function: Callable[[str], object], text: str, *, seconds: float = 0.5) -> float:
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or calls < 3:
        function(text)
        calls += 1
    return elapsed / calls * 1000


def main() -> None:
    def baseline(text: str) -> str:
        return EMAIL.sub("[EMAIL]", text)

    def mask(text: str) -> str:
        return PiiMasker().mask(text)

    print(f"{'text':<24} {'baseline ms':>12} {'mask ms':>10} {'x':>7} {'redact ms':>10} {'x':>7}")
    cases = {f"chat message {index + 1}": text for index, text in enumerate(CHAT)} | ADVERSARIAL
    for name, text in cases.items():
        base = per_call_ms(baseline, text)
        masked = per_call_ms(mask, text)
        redacted = per_call_ms(redact, text)
        ratios = f"{masked:>10.3f} {masked / base:>7.0f} {redacted:>10.3f} {redacted / base:>7.0f}"
        print(f"{name:<24} {base:>12.4f} {ratios}")

    formatter = KeyValueFormatter()
    print(f"\n{'access line client':<24} {'whole line ms':>14} {'format ms':>10} {'x':>7}")
    for client in ("127.0.0.1:53122", "203.0.113.45:51234", "2001:db8::1:443"):
        record = logging.LogRecord(
            ACCESS_LOGGER, logging.INFO, __file__, 0, '%s - "%s %s HTTP/%s" %d',
            (client, "POST", "/webhooks/wazzup/wz-hook-3f9c2b7e", "1.1", 200), None,
        )  # fmt: skip
        SecretMaskingFilter().filter(record)
        line = record.getMessage()

        def format_record(_line: str, record: logging.LogRecord = record) -> str:
            return formatter.format(record)

        whole = per_call_ms(redact, line)
        formatted = per_call_ms(format_record, line)
        print(f"{client:<24} {whole:>14.4f} {formatted:>10.4f} {formatted / whole:>7.2f}")


if __name__ == "__main__":
    main()
