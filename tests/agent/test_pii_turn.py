"""A real turn: the model sees no customer number in any shape, yet sees the catalog's SKUs and the business's
own number as written; the reply gets the real number back."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent.eval.runner import ChatDriver
from salesbot.agent.playbook import Playbook, PlaybookError, parse_playbook
from salesbot.agent.service import SalesAgentService
from salesbot.models import Conversation, Product
from salesbot.settings import Settings
from tests.agent.scripted import Script, render

SKU = "TON-62410056"  # its digits are a valid Sharjah landline (06 241 0056)
OFFICE = "04 234 5678"


async def test_a_turn_masks_every_phone_shape_but_not_skus_or_the_business_number(
    catalog_session: AsyncSession, settings: Settings, playbook: Playbook
) -> None:
    catalog_session.add(Product(sku=SKU, name="Toner 216A", price=Decimal("250.00"), currency="AED", stock=4))
    await catalog_session.flush()
    business = playbook.model_copy(
        update={"company": playbook.company.model_copy(update={"phones": [f"+971 {OFFICE[1:]}"]})}
    )

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        prompt = "\n".join(render(message) for message in messages)
        link = re.search(r"wa\.me/(\[PHONE_\d+\])", prompt)
        assert link, prompt
        return ModelResponse(parts=[TextPart(f"We will write to you on {link.group(1)}.")])

    script = Script([answer])
    service = SalesAgentService(model=script.model, playbook=business, clock=lambda: datetime.now(UTC))
    driver = ChatDriver(catalog_session, service, settings)
    conversation = await driver.start()

    reply = await driver.say(
        f"Do you have {SKU}? Write to me: https://wa.me/971501234567 or тел79011234567 or رقم٠٥٠٧٦٥٤٣٢١. "
        f"Your office {OFFICE} does not answer."
    )

    shown = "\n".join(seen.text() for seen in script.seen)
    for raw in ("971501234567", "79011234567", "٠٥٠٧٦٥٤٣٢١"):
        assert raw not in shown
    assert SKU in shown
    assert f"Your office {OFFICE} does not answer" in shown
    assert reply.text == "We will write to you on 971501234567."
    stored = await catalog_session.scalar(select(Conversation.pii_map).where(Conversation.id == conversation.id))
    assert stored is not None
    assert sorted(stored.values()) == sorted(["971501234567", "79011234567", "٠٥٠٧٦٥٤٣٢١"])


def test_the_playbook_refuses_a_business_phone_that_is_not_a_number(playbook: Playbook) -> None:
    data = playbook.model_dump(mode="json")
    data["company"]["phones"] = ["+971 4 234 5678", "call us"]
    with pytest.raises(PlaybookError, match=r"company\.phones"):
        parse_playbook(data)
    data["company"]["phones"] = ["+971 4 234 5678"]
    assert parse_playbook(data).company.phones == ["+971 4 234 5678"]
    assert "+971 4 234 5678" in parse_playbook(data).public_text()


async def test_a_sku_edited_in_the_catalog_is_not_masked_from_the_next_turn_on(
    catalog_session: AsyncSession, settings: Settings, playbook: Playbook
) -> None:
    """The catalog's SKUs are remembered between turns (salesbot.agent.repository.skus_with_digits): an edit is
    seen by the next turn all the same."""
    product = Product(sku=SKU, name="Toner 216A", price=Decimal("250.00"), currency="AED", stock=4)
    catalog_session.add(product)
    await catalog_session.flush()
    renamed = "TON-62410057"  # also a valid Sharjah landline: masked unless the catalog has it

    def echo(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("Noted.")])

    script = Script([echo] * 5)
    service = SalesAgentService(model=script.model, playbook=playbook, clock=lambda: datetime.now(UTC))
    driver = ChatDriver(catalog_session, service, settings)
    await driver.start()

    await driver.say(f"Is {renamed} the new toner?")
    assert renamed not in script.seen[-1].text()  # not in the catalog yet: a number like any other

    product.sku = renamed
    await catalog_session.flush()
    await driver.say(f"And {renamed}?")
    assert f"And {renamed}?" in script.seen[-1].text()

    catalog_session.add(Product(sku=SKU, name="Toner 217A", price=Decimal("260.00"), currency="AED", stock=2))
    await catalog_session.flush()
    await driver.say(f"And {SKU}?")
    assert f"And {SKU}?" in script.seen[-1].text()

    # A writer whose clock runs behind (another host) does not move the latest `updated_at`; its insert is seen
    # all the same (by the highest id).
    skewed = "TON-62410058"
    await driver.say(f"What about {skewed}?")
    assert skewed not in script.seen[-1].text()
    catalog_session.add(
        Product(
            sku=skewed,
            name="Toner 218A",
            price=Decimal("270.00"),
            currency="AED",
            stock=1,
            updated_at=datetime.now(UTC) - timedelta(hours=1),
        )
    )
    await catalog_session.flush()
    await driver.say(f"And {skewed}?")
    assert f"And {skewed}?" in script.seen[-1].text()
