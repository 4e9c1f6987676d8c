"""The sales agent's tools (names are a contract: DESIGN.md). Docstrings are the schema the model reads.

Every tool takes identity from `ctx.deps` (conversation, customer), runs its database work in a SAVEPOINT and
only flushes, so a refused or failed call leaves the database as it was and the turn job decides about the
commit. In a turn each call is a short transaction of the run's draft (salesbot.agent.draft): a tool that
writes rows also `keep`s how to write them again, for later calls and for the turn's commit. Text returned to
the model is PII-masked; placeholders in arguments are resolved here. Structured results ride along as
`ToolReturn.metadata` (never sent to the model; the offline responder composes from it).
"""

from __future__ import annotations

from pydantic_ai import RunContext, Tool
from pydantic_ai.tools import ToolDefinition

from salesbot.agent.catalog_tools import get_product, search_knowledge, search_products
from salesbot.agent.deal_tools import (
    advance_stage,
    calculate_financing,
    create_quote,
    request_human,
    save_customer_details,
)
from salesbot.agent.deps import AgentDeps
from salesbot.agent.stages import tools_for_stage


async def _offered_in_stage(ctx: RunContext[AgentDeps], tool_def: ToolDefinition) -> ToolDefinition | None:
    """Hide the tools that make no sense in the conversation's current stage."""
    return tool_def if tool_def.name in tools_for_stage(ctx.deps.conversation.sales_stage) else None


TOOL_FUNCTIONS = (
    search_products,
    get_product,
    search_knowledge,
    advance_stage,
    save_customer_details,
    create_quote,
    calculate_financing,
    request_human,
)

# Sequential: the tools share one database session, which must not be used concurrently (and each call is a
# transaction of the turn's draft of its own).
SALES_TOOLS: list[Tool[AgentDeps]] = [
    Tool(function, prepare=_offered_in_stage, sequential=True, max_retries=2) for function in TOOL_FUNCTIONS
]
