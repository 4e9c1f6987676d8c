"""Property tests of the Meta parser (as for the other providers in tests/fuzz): any signed body parses into
events the database can store, or is refused with a clean 400; unsigned or wrongly signed bytes get 403."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesbot.messaging.base import MalformedWebhookError, WebhookRejectedError, WebhookRequest
from salesbot.messaging.meta import MetaProvider, compute_signature
from salesbot.settings import MetaSettings
from tests.fuzz.test_provider_parsers import FUZZ, hostile_text, json_values, parse_or_400

SECRET = "fuzz-meta-app-secret-0123456789"
meta = MetaProvider(
    MetaSettings(access_token="t", phone_number_id="", app_secret=SECRET, verify_token="v"),
    httpx.AsyncClient(),
    redis=None,  # type: ignore[arg-type]  (parsing needs no Redis)
)

TYPES = [
    "text", "image", "audio", "video", "document", "sticker", "location", "contacts", "interactive", "button",
    "reaction", "order", "unsupported", "system", "revoke", "edit",
]  # fmt: skip
ids = hostile_text | st.from_regex(r"\Awamid\.[A-Za-z0-9=]{1,60}\Z") | st.integers()
meta_item = st.fixed_dictionaries(
    {},
    optional={
        "from": hostile_text | st.from_regex(r"\A[0-9]{5,15}\Z") | json_values,
        "to": hostile_text | st.from_regex(r"\A[0-9]{5,15}\Z") | json_values,
        "from_user_id": hostile_text | json_values,
        "id": ids | json_values,
        "timestamp": st.integers() | hostile_text | json_values,
        "type": st.sampled_from(TYPES) | json_values,
        **{kind: st.dictionaries(hostile_text, json_values, max_size=4) | json_values for kind in TYPES},
        "errors": st.lists(st.dictionaries(hostile_text, json_values, max_size=3), max_size=2) | json_values,
    },
)
meta_status = st.fixed_dictionaries(
    {},
    optional={
        "id": ids | json_values,
        "status": st.sampled_from(["sent", "delivered", "read", "played", "failed", "deleted"]) | json_values,
        "biz_opaque_callback_data": hostile_text | json_values,
        "errors": st.lists(
            st.fixed_dictionaries({}, optional={"code": json_values, "title": json_values, "error_data": json_values}),
            max_size=2,
        )
        | json_values,
    },
)
meta_value = st.fixed_dictionaries(
    {},
    optional={
        "metadata": st.fixed_dictionaries({}, optional={"phone_number_id": json_values}) | json_values,
        "contacts": st.lists(st.dictionaries(hostile_text, json_values, max_size=3), max_size=2) | json_values,
        "messages": st.lists(meta_item | json_values, max_size=3) | json_values,
        "message_echoes": st.lists(meta_item | json_values, max_size=3) | json_values,
        "statuses": st.lists(meta_status | json_values, max_size=3) | json_values,
        "errors": json_values,
    },
)
meta_body = (
    st.fixed_dictionaries(
        {"object": st.just("whatsapp_business_account") | json_values},
        optional={
            "entry": st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "id": json_values,
                        "changes": st.lists(
                            st.fixed_dictionaries(
                                {},
                                optional={
                                    "field": st.sampled_from(["messages", "smb_message_echoes"]) | json_values,
                                    "value": meta_value | json_values,
                                },
                            )
                            | json_values,
                            max_size=3,
                        )
                        | json_values,
                    },
                )
                | json_values,
                max_size=3,
            )
            | json_values
        },
    )
    | json_values
)


def signed(body: bytes) -> WebhookRequest:
    return WebhookRequest("/webhooks/meta", "", {"x-hub-signature-256": compute_signature(SECRET, body)}, body)


@given(body=meta_body)
@FUZZ
def test_meta_json_parses_into_storable_events_or_400(body: Any) -> None:
    webhook = signed(json.dumps(body, allow_nan=True).encode())
    meta.verify(webhook)
    parse_or_400(meta.parse, webhook)


@given(body=st.binary(max_size=300), signature=st.text(max_size=80) | st.none())
@FUZZ
def test_meta_arbitrary_bytes_and_signatures_are_refused_cleanly(body: bytes, signature: str | None) -> None:
    headers = {} if signature is None else {"x-hub-signature-256": signature}
    with pytest.raises((WebhookRejectedError, MalformedWebhookError)) as raised:
        meta.verify(WebhookRequest("/webhooks/meta", "", headers, body))
    assert raised.value.status_code == 403
    parse_or_400(meta.parse, signed(body))
