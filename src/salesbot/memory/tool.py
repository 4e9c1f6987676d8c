"""`recall_customer_memory`: the agent's tool over the customer's memory. The customer comes from the run's deps,
never from the model's arguments, so a tool call cannot reach another customer's facts."""

from __future__ import annotations

from pydantic_ai import ModelRetry, RunContext, Tool, ToolReturn

from salesbot.agent.deps import AgentDeps
from salesbot.agent.grounding import figures
from salesbot.kit.logging import get_logger
from salesbot.knowledge.embeddings import get_embedder
from salesbot.memory.service import recall
from salesbot.memory.types import RecalledFact

log = get_logger(__name__)

TOOL_LIMIT = 6


def facts_text(facts: list[RecalledFact]) -> str:
    """One line per fact with its date, for the model (mask before sending)."""
    return "\n".join(f"- {fact.updated_at:%Y-%m-%d}: {fact.text}" for fact in facts)


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
    # Totals of earlier quotes come from the database: the model may cite them.
    deps.remember_figures(figures(text))
    return ToolReturn(
        return_value=deps.pii.mask(text),
        metadata={
            "status": "ok",
            "facts": [{"kind": fact.kind.value, "text": deps.pii.mask(fact.text)} for fact in facts],
        },
    )


MEMORY_TOOLS: list[Tool[AgentDeps]] = [Tool(recall_customer_memory, sequential=True, max_retries=2)]
