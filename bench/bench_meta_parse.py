"""Meta webhook cost in the request path: signature check (HMAC-SHA256 over the raw body) plus parsing, against
Wazzup's parse of the same message (its secret is a path comparison) in the same run.

    .venv/bin/python bench/bench_meta_parse.py                # 20000 bodies of each kind
    .venv/bin/python bench/bench_meta_parse.py --bodies 50000

Bodies: one text message each (unique ids), a status webhook, and a 20-message batch. Prints microseconds per
body and the ratio to Wazzup's text parse; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from salesbot.messaging.base import WebhookRequest
from salesbot.messaging.meta import MetaProvider, compute_signature
from salesbot.messaging.wazzup import WazzupProvider
from salesbot.settings import MetaSettings, WazzupSettings

SECRET = "bench-meta-app-secret-0123456789abcdef"
NUMBER = "106540352242922"


def meta_text(index: int, count: int = 1) -> dict[str, Any]:
    messages = [
        {
            "from": f"97150{index:07d}",
            "id": f"wamid.{uuid.uuid4().hex}",
            "timestamp": "1697043223",
            "text": {"body": f"Do you have office chairs in stock? ({index}.{n})"},
            "type": "text",
        }
        for n in range(count)
    ]
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": NUMBER},
        "contacts": [{"profile": {"name": "Layla"}, "wa_id": f"97150{index:07d}"}],
        "messages": messages,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"value": value, "field": "messages"}]}],
    }


def meta_status(index: int) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": NUMBER},
        "statuses": [
            {
                "id": f"wamid.{uuid.uuid4().hex}",
                "status": "delivered",
                "timestamp": "1698266945",
                "recipient_id": f"97150{index:07d}",
                "biz_opaque_callback_data": f"reply:{index}:1:0",
            }
        ],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"value": value, "field": "messages"}]}],
    }


def wazzup_text(index: int) -> dict[str, Any]:
    return {
        "messages": [
            {
                "messageId": str(uuid.uuid4()),
                "dateTime": "2025-01-01T10:00:00.000Z",
                "channelId": "b96a999e-06f5-4cac-8413-ba999993f981",
                "chatType": "whatsapp",
                "chatId": f"7990{index:07d}",
                "type": "text",
                "isEcho": False,
                "contact": {"name": "Layla"},
                "text": f"Do you have office chairs in stock? ({index}.0)",
            }
        ]
    }


def timed(requests: list[WebhookRequest], handle: Callable[[WebhookRequest], object]) -> float:
    started = time.perf_counter()
    for request in requests:
        handle(request)
    return (time.perf_counter() - started) / len(requests) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bodies", type=int, default=20000)
    args = parser.parse_args()
    http = httpx.AsyncClient()
    meta = MetaProvider(
        MetaSettings(access_token="t", phone_number_id=NUMBER, app_secret=SECRET, verify_token="v"),
        http,
        redis=None,  # type: ignore[arg-type]  (parsing needs no Redis)
    )
    wazzup = WazzupProvider(WazzupSettings(webhook_secret="s", api_key="k", channel_id=""), http)

    def signed(body: dict[str, Any]) -> WebhookRequest:
        raw = json.dumps(body).encode()
        return WebhookRequest("/webhooks/meta", "", {"x-hub-signature-256": compute_signature(SECRET, raw)}, raw)

    def meta_handle(request: WebhookRequest) -> object:
        meta.verify(request)
        return meta.parse(request)

    n = args.bodies
    wazzup_requests = [
        WebhookRequest("/webhooks/wazzup/s", "", {}, json.dumps(wazzup_text(i)).encode(), {"secret": "s"})
        for i in range(n)
    ]

    def wazzup_handle(request: WebhookRequest) -> object:
        wazzup.verify(request)
        return wazzup.parse(request)

    cases = {
        "wazzup text (baseline)": (wazzup_requests, wazzup_handle),
        "meta text": ([signed(meta_text(i)) for i in range(n)], meta_handle),
        "meta status": ([signed(meta_status(i)) for i in range(n)], meta_handle),
        "meta batch of 20 messages": ([signed(meta_text(i, 20)) for i in range(max(1, n // 20))], meta_handle),
    }
    results = {name: timed(requests, handle) for name, (requests, handle) in cases.items()}
    baseline = results["wazzup text (baseline)"]
    print(f"{'body':<28} {'us/body':>10} {'x wazzup':>10}")
    for name, micros in results.items():
        print(f"{name:<28} {micros:>10.1f} {micros / baseline:>10.2f}")


if __name__ == "__main__":
    main()
