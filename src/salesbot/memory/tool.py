"""`recall_customer_memory`: the agent's tool over the customer's memory. The customer comes from the run's deps,
never from the model's arguments, so a tool call cannot reach another customer's facts."""

from __future__ import annotations

from decimal import Decimal

from pydantic_ai import ModelRetry, RunContext, Tool, ToolReturn
from sqlalchemy import select

from salesbot.agent.deps import AgentDeps
from salesbot.agent.grounding import Evidence, evidence
from salesbot.kit.logging import get_logger
from salesbot.knowledge.embeddings import get_embedder
from salesbot.memory.service import recall
from salesbot.memory.types import RecalledFact
from salesbot.models import Conversation, Quote

log = get_logger(__name__)

TOOL_LIMIT = 6
QUOTES_CITED = 5


def facts_text(facts: list[RecalledFact]) -> str:
    """One line per fact with its date, for the model (mask before sending)."""
    return "\n".join(f"- {fact.updated_at:%Y-%m-%d}: {fact.text}" for fact in facts)


async def _earlier_quote_evidence(deps: AgentDeps) -> list[Evidence]:
    """Every figure of the customer's recent quotes, read from the quotes themselves (never from memory text)."""
    quotes = await deps.session.scalars(
        select(Quote)
        .join(Conversation, Conversation.id == Quote.conversation_id)
        .where(Conversation.customer_id == deps.customer.id)
        .order_by(Quote.id.desc())
        .limit(QUOTES_CITED)
    )
    cites: list[Evidence] = []
    for quote in quotes:
        skus = [str(item["sku"]) for item in quote.items]
        for value in (quote.subtotal, quote.discount_amount, quote.total):
            cites.append(evidence("quote", value, currency=quote.currency, skus=skus))
        for item in quote.items:
            for field in ("unit_price", "line_total"):
                if item.get(field) is not None:
                    amount = Decimal(str(item[field]))
                    cites.append(evidence("quote", amount, currency=quote.currency, skus=[str(item["sku"])]))
    return cites


async def recall_customer_memory(ctx: RunContext[AgentDeps], query: str) -> ToolReturn:
    """Look up what this customer did in earlier conversations: products they asked about or chose, quotes
    they received, their company and needs. Use it when the customer refers to an earlier chat ("the printer
    from last time", "same as before") or to personalise the conversation.

    Args:
        query: What to look for, e.g. "printer they asked about" or "last quote".
    """
    deps = ctx.deps
    if not query.strip():
        raise ModelRetry("query must say what to look for in the customer's earlier conversations")
    try:
        async with deps.session.begin_nested():
            facts = await recall(
                deps.session, deps.customer.id, query, TOOL_LIMIT, embedder=get_embedder(deps.settings)
            )
    except Exception:
        log.exception("memory.recall_failed", conversation=deps.conversation_id)
        return ToolReturn(
            return_value="The customer's memory is unavailable right now; continue without it.",
            metadata={"status": "failed"},
        )
    if not facts:
        text = "Nothing is remembered about this customer from earlier conversations."
    else:
        text = "Remembered from earlier conversations (prices may have changed: check with get_product):\n"
        text += facts_text(facts)
    # The figures of the customer's earlier quotes come from the database: the model may cite them.
    deps.remember_evidence(await _earlier_quote_evidence(deps))
    return ToolReturn(
        return_value=deps.pii.mask(text),
        metadata={
            "status": "ok",
            "facts": [{"kind": fact.kind.value, "text": deps.pii.mask(fact.text)} for fact in facts],
        },
    )


MEMORY_TOOLS: list[Tool[AgentDeps]] = [Tool(recall_customer_memory, sequential=True, max_retries=2)]
