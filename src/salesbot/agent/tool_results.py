"""What the sales agent's tools return: masked results with their evidence, refusals, failures, and arguments
checked for the model (placeholders resolved, numbers parsed): one way for every tool (agent/tools.py)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic_ai import ModelRetry, ToolReturn
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import InstanceState

from salesbot.agent.deps import AgentDeps
from salesbot.agent.grounding import Evidence
from salesbot.agent.pii import PLACEHOLDER
from salesbot.agent.stages import tools_for_stage
from salesbot.kit.logging import get_logger

log = get_logger(__name__)


def tool_reply(deps: AgentDeps, text: str, metadata: dict[str, Any], *, cites: Sequence[Evidence] = ()) -> ToolReturn:
    """Masked text for the model; `cites` (what its figures are) become citable in replies."""
    deps.remember_evidence(list(cites))
    return ToolReturn(return_value=deps.pii.mask(text), metadata=metadata)


def refusal(deps: AgentDeps, tool: str, reason: str) -> ToolReturn:
    log.info("agent.tool_refused", tool=tool, conversation=deps.conversation_id)
    return ToolReturn(
        return_value=deps.pii.mask(f"Refused: {reason}"), metadata={"status": "refused", "reason": reason}
    )


async def failure(deps: AgentDeps, tool: str) -> ToolReturn:
    log.exception("agent.tool_failed", tool=tool, conversation=deps.conversation_id)
    # The savepoint was rolled back, which expires what it had changed: reload it now, as the rest of the run
    # reads these objects synchronously (instructions, other tools).
    for instance in (deps.conversation, deps.customer):
        state: InstanceState[Any] = sa_inspect(instance)
        if state.detached:
            continue  # the turn's detached copy: the rollback did not touch it
        try:
            await deps.session.refresh(instance)
        except Exception:
            log.exception("agent.refresh_failed", tool=tool, conversation=deps.conversation_id)
    text = (
        f"{tool} failed because of an internal error. Do not guess the result: tell the customer you will "
        "check, or offer a manager with request_human."
    )
    return ToolReturn(return_value=text, metadata={"status": "failed"})


def unavailable_in_stage(deps: AgentDeps, tool: str) -> ToolReturn | None:
    stage = deps.conversation.sales_stage
    if tool in tools_for_stage(stage):
        return None
    return refusal(deps, tool, f"{tool} is not available in stage '{stage.value}'.")


def resolve_argument(deps: AgentDeps, value: str | None, *, field: str) -> str | None:
    """A tool argument with placeholders resolved; an unknown placeholder is an error the model can fix."""
    if value is None:
        return None
    for match in PLACEHOLDER.finditer(value):
        if not deps.pii.knows(match.group(0)):
            raise ModelRetry(f"{field}: {match.group(0)} is not a placeholder of this conversation; use one you saw.")
    resolved = deps.pii.resolve(value)
    return resolved or None


def decimal_argument(value: float | int | str, *, field: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except InvalidOperation as error:
        raise ModelRetry(f"{field} must be a number") from error
    if not result.is_finite():
        raise ModelRetry(f"{field} must be a finite number")
    return result
