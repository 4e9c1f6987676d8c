"""Product photos and quote PDFs after the agent's reply, through the real pipeline: the production agent with a
scripted model, the real outbox and worker, the providers' HTTP APIs faked at the boundary.

Photos follow the reply in the order it names the products, one message each, captioned where the provider
allows it; they are parts of the reply, so STOP or a manager's takeover after the text withdraws them. A quote
is followed by its PDF as a document whose signed link the app serves."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from salesbot.agent.service import SalesAgentService
from salesbot.db import unit_of_work
from salesbot.models import Author, Channel, DeliveryStatus, Direction, Product, Quote, SalesStage
from tests.agent.scripted import Script, call
from tests.fakes.pipeline import PUBLIC_BASE_URL, Pipeline, twilio_params, wazzup_message
from tests.fakes.provider_api import Sent
from tests.messaging.test_meta_webhook import CUSTOMER as META_CUSTOMER
from tests.messaging.test_meta_webhook import post, text_message
from tests.reporting.factories import make_chat

WAZZUP_CHAT = "79990007788"
TWILIO_CHAT = "whatsapp:+971501112233"
CHAIR = "https://cdn.shop.example/img/ergo-chair.jpg"
DESK = "https://cdn.shop.example/img/oak-desk.png"
LAMP = "http://cdn.shop.example/img/desk-lamp.jpg"
# Everything the catalog tools return this turn; the reply names the desk first, then the chair and the stool.
LOOKUPS = [call("get_product", sku=sku) for sku in ("ERGO-CHAIR", "OAK-DESK", "DESK-LAMP", "PLAIN-STOOL")]
REPLY = "The Oak Desk pairs well with the ergo chair; the Plain Stool is a cheaper seat."
DESK_CAPTION = "Oak Desk | 1200.00 AED | SKU OAK-DESK"
CHAIR_CAPTION = "Ergo Chair | 450.50 AED | SKU ERGO-CHAIR"


async def add_catalog(pipeline: Pipeline) -> None:
    async with unit_of_work(pipeline.resources.sessionmaker) as session:
        session.add_all(
            [
                Product(
                    sku="ERGO-CHAIR",
                    name="Ergo Chair",
                    price=Decimal("450.50"),
                    currency="AED",
                    stock=9,
                    image_url=CHAIR,
                ),
                Product(
                    sku="OAK-DESK", name="Oak Desk", price=Decimal("1200"), currency="AED", stock=3, image_url=DESK
                ),
                # Looked up but not named in the reply: no photo.
                Product(
                    sku="DESK-LAMP", name="Desk Lamp", price=Decimal("99"), currency="AED", stock=5, image_url=LAMP
                ),
                # Named, but without a photo.
                Product(sku="PLAIN-STOOL", name="Plain Stool", price=Decimal("75"), currency="AED", stock=5),
            ]
        )


def use_script(pipeline: Pipeline, *steps: Any) -> Script:
    script = Script(list(steps))
    pipeline.worker.generator = SalesAgentService(model=script.model)
    return script


async def customer_says(pipeline: Pipeline, channel: Channel, text: str) -> list[Sent]:
    if channel is Channel.WAZZUP:
        response = await pipeline.wazzup_text(WAZZUP_CHAT, text)
    elif channel is Channel.TWILIO:
        response = await pipeline.twilio(twilio_params(TWILIO_CHAT, text))
    else:
        response = await post(pipeline, text_message(text, f"wamid.{uuid.uuid4().hex}"))
    assert response.status_code == 200, response.text
    await pipeline.worker.drain()
    api = {Channel.WAZZUP: pipeline.wazzup_api, Channel.TWILIO: pipeline.twilio_api, Channel.META: pipeline.meta_api}
    return list(api[channel].sent)


@pytest.mark.parametrize("channel", [Channel.WAZZUP, Channel.TWILIO, Channel.META])
async def test_the_photos_of_the_named_products_follow_the_reply_in_order(pipeline: Pipeline, channel: Channel) -> None:
    await add_catalog(pipeline)
    use_script(pipeline, LOOKUPS, REPLY)

    sent = await customer_says(pipeline, channel, "Something to work at, please")

    assert [item.media for item in sent] == [None, DESK, CHAIR]
    assert sent[0].text == REPLY
    if channel is Channel.WAZZUP:
        # Wazzup refuses text with `contentUri`: the photo goes alone (the fake refuses both like Wazzup does).
        assert [item.text for item in sent[1:]] == [None, None]
    else:
        assert [item.text for item in sent[1:]] == [DESK_CAPTION, CHAIR_CAPTION]
    if channel is Channel.META:
        assert [item.kind for item in sent] == ["text", "image", "image"]
    rows = await pipeline.messages(direction=Direction.OUTBOUND)
    assert [(row.content_type, row.delivery_status, row.part_index) for row in rows] == [
        ("text", DeliveryStatus.SENT, 0),
        ("image", DeliveryStatus.SENT, 1),
        ("image", DeliveryStatus.SENT, 2),
    ]
    # Each part went out under its own idempotency key, one reply's.
    assert len({row.idempotency_key for row in rows}) == 3
    assert len({(row.idempotency_key or "").rsplit(":", 1)[0] for row in rows}) == 1


@pytest.mark.parametrize("pipeline_overrides", [{"root": {"max_product_images": 1}}])
async def test_max_product_images_caps_the_photos(pipeline: Pipeline) -> None:
    await add_catalog(pipeline)
    use_script(pipeline, LOOKUPS, REPLY)

    sent = await customer_says(pipeline, Channel.TWILIO, "Something to work at, please")

    assert [(item.media, item.text) for item in sent] == [(None, REPLY), (DESK, DESK_CAPTION)]


async def test_a_product_the_catalog_did_not_return_this_turn_gets_no_photo(pipeline: Pipeline) -> None:
    await add_catalog(pipeline)
    # The reply names the chair, but no tool returned it this turn: nothing the catalog said, no photo.
    use_script(pipeline, [call("get_product", sku="OAK-DESK")], "Try the Oak Desk. An Ergo Chair suits it.")

    sent = await customer_says(pipeline, Channel.TWILIO, "A desk?")

    assert [item.media for item in sent] == [None, DESK]


async def test_stop_after_the_text_withdraws_the_photos(pipeline: Pipeline) -> None:
    await add_catalog(pipeline)
    use_script(pipeline, LOOKUPS, REPLY)
    stopped: list[int] = []

    async def customer_sends_stop(sent: Sent) -> None:
        # The reply's text is at Wazzup; before its answer is back, the customer's STOP arrives.
        if not stopped and sent.text == REPLY:
            stopped.append((await pipeline.wazzup_text(WAZZUP_CHAT, "STOP")).status_code)

    pipeline.wazzup_api.on_accept = customer_sends_stop
    sent = await customer_says(pipeline, Channel.WAZZUP, "Something to work at, please")

    assert stopped == [200]
    assert [item.media for item in sent if item.media] == []
    photos = [row for row in await pipeline.messages(direction=Direction.OUTBOUND) if row.content_type == "image"]
    assert [(row.delivery_status, row.error) for row in photos] == [(DeliveryStatus.CANCELLED, "opted_out")] * 2


async def test_a_manager_writing_after_the_text_withdraws_the_photos(pipeline: Pipeline) -> None:
    await add_catalog(pipeline)
    use_script(pipeline, LOOKUPS, REPLY)
    took_over: list[int] = []

    async def manager_writes(sent: Sent) -> None:
        if not took_over and sent.text == REPLY:
            echo = wazzup_message(WAZZUP_CHAT, "I'll take it from here", isEcho=True, status="sent", authorName="Anna")
            took_over.append((await pipeline.wazzup({"messages": [echo]})).status_code)

    pipeline.wazzup_api.on_accept = manager_writes
    sent = await customer_says(pipeline, Channel.WAZZUP, "Something to work at, please")

    assert took_over == [200]
    assert [item.media for item in sent if item.media] == []
    rows = await pipeline.messages(direction=Direction.OUTBOUND)
    photos = [row for row in rows if row.content_type == "image"]
    assert len(photos) == 2
    assert {row.delivery_status for row in photos} == {DeliveryStatus.CANCELLED}


async def test_a_quote_is_followed_by_its_pdf_which_the_signed_link_serves(pipeline: Pipeline) -> None:
    await add_catalog(pipeline)
    async with unit_of_work(pipeline.resources.sessionmaker) as session:
        await make_chat(session, phone=META_CUSTOMER, name="John Smith", channel=Channel.META, stage=SalesStage.QUOTING)
    use_script(pipeline, [call("create_quote", items=[{"sku": "OAK-DESK", "qty": 2}])], "Here is your quotation.")

    sent = await customer_says(pipeline, Channel.META, "Please send the quote for two desks")

    async with pipeline.resources.sessionmaker() as session:
        [quote] = list(await session.scalars(select(Quote)))
    number = f"Q-{quote.id:06d}"
    assert [item.kind for item in sent] == ["text", "document"]
    assert sent[0].text == "Here is your quotation."
    document = sent[1]
    assert (document.filename, document.text) == (f"quote-{number}.pdf", number)
    assert document.media is not None
    link = urlsplit(document.media)
    assert f"{link.scheme}://{link.netloc}" == PUBLIC_BASE_URL
    assert link.path == f"/documents/quotes/{quote.id}.pdf"
    # The provider fetches it from the app: a valid signed link serves the PDF.
    served = await pipeline.client.get(f"{link.path}?{link.query}")
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/pdf"
    assert served.content.startswith(b"%PDF")
    rows = await pipeline.messages(direction=Direction.OUTBOUND)
    assert [(row.content_type, row.author, row.delivery_status) for row in rows] == [
        ("text", Author.BOT, DeliveryStatus.SENT),
        ("document", Author.BOT, DeliveryStatus.SENT),
    ]
