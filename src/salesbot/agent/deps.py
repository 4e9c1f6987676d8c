"""What a run of the sales agent works with: identity and state come from here, never from tool arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, TypedDict

from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent import grounding
from salesbot.agent.draft import Draft
from salesbot.agent.grounding import Evidence, Ledger
from salesbot.agent.pii import PiiMasker
from salesbot.agent.playbook import Playbook
from salesbot.agent.stages import FunnelState
from salesbot.knowledge.types import CatalogSearch
from salesbot.memory.types import RecalledFact
from salesbot.models import Conversation, Customer
from salesbot.settings import Settings

# Bounds on what the conversation's `facts` JSONB keeps, so it cannot grow without limit in a long chat.
MAX_SHOWN_SKUS = 40
MAX_FIGURES = 400
MAX_EVIDENCE = 400
MAX_STAGE_HISTORY = 30


class SelectedItem(TypedDict):
    sku: str
    qty: int


class StageChange(TypedDict):
    at: str
    from_stage: str
    to_stage: str
    reason: str


class ConversationFacts(TypedDict, total=False):
    """The agent's keys in `conversation.facts` (other domains may add their own)."""

    need: str
    shown_skus: list[str]
    selected: list[SelectedItem]
    # Written by earlier versions (bare numbers of tool results); no longer read.
    figures: list[str]
    # What each figure of a tool result is and where it came from (`grounding.Evidence`), for the grounding check.
    evidence: list[Evidence]
    last_quote_id: int
    stage_history: list[StageChange]
    handoff_reason: str
    # Id of the newest message folded into `conversation.summary`.
    summarized_until: int


@dataclass(frozen=True)
class PastQuote:
    id: int
    created_at: datetime
    total: Decimal
    currency: str
    items: str  # "OC-100 x 3, DK-200 x 1"

    @property
    def skus(self) -> list[str]:
        return [line.rsplit(" x ", 1)[0] for line in self.items.split(", ") if line]


@dataclass(frozen=True)
class CustomerProfile:
    """What is known about the customer from earlier conversations (returning customers)."""

    returning: bool
    previous_stage: str | None
    past_quotes: list[PastQuote]


@dataclass
class TurnState:
    """Mutable state of one turn, shared by the tools, the output checks and the service."""

    handoff: bool = False
    handoff_reason: str | None = None
    # Evidence from tool results of this turn (also persisted to facts["evidence"]).
    evidence: list[Evidence] = field(default_factory=list[Evidence])
    grounding_retries: int = 0
    leak_retries: int = 0


@dataclass
class AgentDeps:
    session: AsyncSession
    settings: Settings
    playbook: Playbook
    conversation: Conversation
    customer: Customer
    profile: CustomerProfile
    pii: PiiMasker
    search: CatalogSearch
    language: str
    now: datetime
    # How the run reads and writes: `session` is the draft's (salesbot.agent.draft).
    draft: Draft
    turn: TurnState = field(default_factory=TurnState)
    # Unused: the grounding check reads the playbook and past quotes itself (`ledger`). Kept for callers that still
    # pass it; remove with them.
    baseline_figures: frozenset[str] = frozenset()
    # Facts of the customer's earlier conversations relevant to this turn (memory, MMR-ranked; unmasked).
    memories: tuple[RecalledFact, ...] = ()
    # Catalog name of the product discussed in the customer's previous conversation (memory), if still sold.
    last_product: str | None = None
    conversation_id: int = field(init=False)

    def __post_init__(self) -> None:
        self.conversation_id = self.conversation.id

    @property
    def facts(self) -> ConversationFacts:
        facts: ConversationFacts = dict(self.conversation.facts or {})  # type: ignore[assignment]
        return facts

    def update_facts(self, **changes: Any) -> None:
        """Reassign the JSONB (SQLAlchemy does not see in-place changes of a plain dict)."""
        self.conversation.facts = {**(self.conversation.facts or {}), **changes}

    def selected_items(self) -> list[SelectedItem]:
        return list(self.facts.get("selected", []))

    def funnel_state(self, *, quotes: int) -> FunnelState:
        facts = self.facts
        return FunnelState(
            need=facts.get("need"),
            shown_skus=frozenset(facts.get("shown_skus", [])),
            selected_skus=frozenset(item["sku"] for item in facts.get("selected", [])),
            customer_name=self.customer.name,
            customer_company=self.customer.company,
            quotes=quotes,
        )

    def remember_shown(self, skus: list[str]) -> None:
        shown = [sku for sku in self.facts.get("shown_skus", []) if sku not in skus] + skus
        self.update_facts(shown_skus=shown[-MAX_SHOWN_SKUS:])

    def remember_evidence(self, items: list[Evidence]) -> None:
        """Figures a tool returned become citable, with what they are, for this and later turns."""
        new = [item for item in items if item not in self.turn.evidence]
        if not new:
            return
        self.turn.evidence += new
        known = [item for item in self.facts.get("evidence", []) if item not in new]
        self.update_facts(evidence=(known + new)[-MAX_EVIDENCE:])

    def evidence(self) -> list[Evidence]:
        stored = list(self.facts.get("evidence", []))
        return stored + [item for item in self.turn.evidence if item not in stored]

    def ledger(self) -> Ledger:
        """What a reply of this turn may cite: tool evidence, earlier quotes, the playbook, the current selection."""
        past = [
            grounding.evidence("quote", quote.total, currency=quote.currency, skus=quote.skus)
            for quote in self.profile.past_quotes
        ]
        selection = {item["sku"]: item["qty"] for item in self.selected_items()}
        return Ledger.of([*self.evidence(), *past], self.playbook, selection=selection)
