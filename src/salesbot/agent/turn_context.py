"""The turn's context that rides along with the customer's text as metadata (never sent to an LLM).

The service builds it from the conversation's state; a model that cannot read the instructions (the offline
responder) reads it instead to know the stage, the products discussed and the business's wording.
"""

from __future__ import annotations

from typing import TypedDict

from salesbot.agent.deps import AgentDeps


class TurnItem(TypedDict):
    sku: str
    qty: int


class TurnContext(TypedDict):
    language: str
    stage: str
    company: str
    assistant: str
    currency: str
    customer_name: str | None
    customer_company: str | None
    customer_email: bool
    selected: list[TurnItem]
    shown_skus: list[str]
    discount_cap: str
    handoff_text: str
    has_quote: bool
    # The need the customer stated when the search began (facts["need"]).
    need: str | None
    # The business's own wording for the offline responder's texts in this language (playbook `offline_texts`).
    texts: dict[str, str]
    # The product a returning customer asked about last time (memory), if still sold.
    returning_product: str | None


def turn_context(deps: AgentDeps) -> TurnContext:
    facts = deps.facts
    overrides = deps.playbook.offline_texts
    return TurnContext(
        language=deps.language,
        stage=deps.conversation.sales_stage.value,
        company=deps.playbook.company.name,
        assistant=deps.playbook.assistant.name,
        currency=deps.playbook.currency,
        customer_name=deps.customer.name,
        customer_company=deps.customer.company,
        customer_email=bool(deps.customer.email),
        selected=[TurnItem(sku=item["sku"], qty=item["qty"]) for item in facts.get("selected", [])],
        shown_skus=list(facts.get("shown_skus", []))[-10:],
        discount_cap=f"{deps.playbook.discount.max_pct.normalize():f}",
        handoff_text=deps.playbook.messages.handoff.get(deps.language),
        has_quote=bool(facts.get("last_quote_id")),
        need=facts.get("need"),
        texts={key: texts[deps.language] for key, texts in overrides.items() if texts.get(deps.language)},
        returning_product=deps.last_product,
    )
