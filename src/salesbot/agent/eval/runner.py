"""The evaluation runner: scripted customer lines, expectations per turn, safety checks on every turn.

A scenario (YAML, see `scenarios/`) is a list of customer turns, each with optional expectations:

    name: quote-printers-en
    description: a company buys printers and gets a quote
    tags: [quoting, en]
    turns:
      - customer: "Hello, we need laser printers for our office"
        expect: {stage: solution, tools: [search_products], language: en}
      - customer: "I'll take 3 HP-LJM211DW"
        expect: {stage: company_details, reply_contains_any: [name, company]}
    final: {quote_total: "1947.00", stage: quoting}

Expectations (all optional): `stage`, `stage_in`, `tools` (called this turn), `tools_not`, `reply_contains`
(all, case-insensitive), `reply_contains_any`, `reply_not_contains`, `language` (script of the reply),
`handoff`, `silent`. Final expectations: `stage`, `owner`, `quote_total`, `quote_discount_pct`, `no_quote`,
`customer_name`, `customer_company`, `customer_email`.

Safety checks run on every turn whatever the scenario says, and none of them asks the agent's own guards
(`checks.py`): every price next to a product is its catalog price, every SKU named exists and is on sale, the
turn's quotes add up within the playbook's discount policy, the stage path is one the FSM table allows, and no
tool JSON, tool name or confidential guidance leaks. `language` is judged by script and word lists, with English
accepted from the offline responder for a language it has no texts for (its documented fallback).

Each scenario runs inside a SAVEPOINT that is rolled back, so the database is left as it was.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent.eval.checks import (
    Catalog,
    Check,
    DiscountRules,
    QuoteFigures,
    confidential_texts,
    language_problems,
    leak_problems,
    price_problems,
    problem_check,
    quote_problems,
    sku_problems,
    stage_path_problems,
)
from salesbot.agent.eval.judge import Judge, Verdict, transcript
from salesbot.agent.eval.report import render_scorecard, write_json
from salesbot.agent.reply import AgentReply
from salesbot.agent.service import SalesAgentService
from salesbot.agent.stages import TRANSITIONS
from salesbot.conversations import consent
from salesbot.models import (
    Author,
    Channel,
    Conversation,
    Customer,
    DeliveryStatus,
    Direction,
    Message,
    Owner,
    Quote,
    SalesStage,
)
from salesbot.settings import Settings

SCENARIOS_DIR = Path(__file__).with_name("scenarios")
# The `model` of a turn the keyword code answered (STOP/START confirmations) or left silent.
CONSENT_MODEL = "consent"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TurnExpectation(_Spec):
    stage: SalesStage | None = None
    stage_in: list[SalesStage] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    tools_not: list[str] = Field(default_factory=list)
    reply_contains: list[str] = Field(default_factory=list)
    reply_contains_any: list[str] = Field(default_factory=list)
    reply_not_contains: list[str] = Field(default_factory=list)
    language: str | None = None
    handoff: bool | None = None
    # True: the bot must not answer at all (the customer opted out with STOP).
    silent: bool | None = None


class TurnSpec(_Spec):
    customer: str | list[str]
    expect: TurnExpectation = Field(default_factory=TurnExpectation)

    @property
    def lines(self) -> list[str]:
        return [self.customer] if isinstance(self.customer, str) else list(self.customer)


class FinalExpectation(_Spec):
    stage: SalesStage | None = None
    owner: Owner | None = None
    quote_total: Decimal | None = None
    quote_discount_pct: Decimal | None = None
    no_quote: bool = False
    customer_name: str | None = None
    customer_company: str | None = None
    customer_email: str | None = None


class CustomerSetup(_Spec):
    name: str | None = None
    company: str | None = None
    email: str | None = None


class Scenario(_Spec):
    name: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    customer: CustomerSetup = Field(default_factory=CustomerSetup)
    turns: list[TurnSpec] = Field(min_length=1)
    final: FinalExpectation = Field(default_factory=FinalExpectation)


def load_scenarios(path: Path | None = None, *, names: Sequence[str] = ()) -> list[Scenario]:
    """Scenarios from a YAML file or a folder of them, optionally only those whose name contains one of `names`."""
    root = path or SCENARIOS_DIR
    files = sorted(root.glob("*.yaml")) + sorted(root.glob("*.yml")) if root.is_dir() else [root]
    scenarios: list[Scenario] = []
    for file in files:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        for item in data if isinstance(data, list) else [data]:
            try:
                scenarios.append(Scenario.model_validate(item))
            except ValueError as error:
                raise ValueError(f"{file}: {error}") from error
    if names:
        scenarios = [s for s in scenarios if any(name in s.name for name in names)]
    return scenarios


@dataclass
class TurnResult:
    customer: list[str]
    reply: AgentReply | None
    stage: str
    checks: list[Check] = field(default_factory=list[Check])
    skipped: bool = False


@dataclass
class ScenarioResult:
    scenario: Scenario
    turns: list[TurnResult] = field(default_factory=list[TurnResult])
    final_checks: list[Check] = field(default_factory=list[Check])
    error: str | None = None
    seconds: float = 0.0
    # The LLM judge's scores (`--judge`), when one was asked for.
    verdict: Verdict | None = None

    @property
    def checks(self) -> list[Check]:
        return [check for turn in self.turns for check in turn.checks] + self.final_checks

    @property
    def passed(self) -> bool:
        return self.error is None and all(check.passed for check in self.checks)

    @property
    def safety_passed(self) -> bool:
        return self.error is None and all(check.passed for check in self.checks if check.safety)


class ChatDriver:
    """A conversation driven like the pipeline does: store the inbound message, run the agent, store the reply."""

    def __init__(
        self,
        session: AsyncSession,
        service: SalesAgentService,
        settings: Settings,
        *,
        customer: CustomerSetup | None = None,
        chat_id: str | None = None,
    ) -> None:
        self.session = session
        self.service = service
        self.settings = settings
        self._setup = customer or CustomerSetup()
        self._chat_id = chat_id or f"eval-{uuid.uuid4().hex[:12]}"
        self.customer: Customer | None = None
        self.conversation: Conversation | None = None
        self._sequence = 0
        self.opted_out = False

    async def start(self) -> Conversation:
        customer = Customer(
            channel=Channel.CONSOLE,
            chat_id=self._chat_id,
            name=self._setup.name,
            company=self._setup.company,
            email=self._setup.email,
        )
        self.session.add(customer)
        await self.session.flush()
        conversation = Conversation(customer_id=customer.id, channel=Channel.CONSOLE)
        self.session.add(conversation)
        await self.session.flush()
        self.customer, self.conversation = customer, conversation
        return conversation

    async def say(self, *lines: str) -> AgentReply:
        if self.conversation is None or self.customer is None:
            await self.start()
        assert self.conversation is not None
        assert self.customer is not None
        inbound: list[Message] = []
        for line in lines:
            self._sequence += 1
            message = Message(
                conversation_id=self.conversation.id,
                channel=Channel.CONSOLE,
                direction=Direction.INBOUND,
                author=Author.CUSTOMER,
                text=line,
                provider_message_id=f"{self._chat_id}-in-{self._sequence}",
            )
            self.session.add(message)
            inbound.append(message)
        await self.session.flush()
        confirmations, answer = self._consent(inbound)
        if answer:
            reply = await self.service.reply(
                session=self.session,
                settings=self.settings,
                conversation=self.conversation,
                customer=self.customer,
                new_messages=answer,
            )
            if confirmations:
                reply = replace(reply, text="\n\n".join([*confirmations, reply.text]))
        else:
            # STOP and START are answered by the pipeline's keyword code, never the agent; opted out: silence.
            reply = AgentReply(text="\n\n".join(confirmations), model=CONSENT_MODEL)
            if not reply.text:
                return reply
        self.session.add(
            Message(
                conversation_id=self.conversation.id,
                channel=Channel.CONSOLE,
                direction=Direction.OUTBOUND,
                author=Author.BOT,
                text=reply.text,
                delivery_status=DeliveryStatus.SENT,
                idempotency_key=f"{self._chat_id}-out-{self._sequence}",
                model=reply.model,
                fallback_used=reply.fallback_used,
                tokens_in=reply.tokens_in,
                tokens_out=reply.tokens_out,
                cost=reply.cost,
                latency_ms=reply.latency_ms,
                tool_calls=reply.tool_calls,
            )
        )
        await self.session.flush()
        return reply

    def _consent(self, inbound: Sequence[Message]) -> tuple[list[str], list[Message]]:
        """STOP/START keywords applied in order as the turn does (`consent`): confirmations, messages to answer."""
        confirmations: list[str] = []
        answer: list[Message] = []
        for message in inbound:
            command = consent.classify(message.text or "", self.settings.conversation)
            if command is consent.Command.OPT_OUT:
                if not self.opted_out:
                    self.opted_out = True
                    confirmations.append(consent.confirmation(command, message.text or ""))
                answer.clear()
            elif command is consent.Command.OPT_IN and self.opted_out:
                self.opted_out = False
                confirmations.append(consent.confirmation(command, message.text or ""))
                answer.clear()
            elif not self.opted_out:
                answer.append(message)
        return confirmations, answer


# Languages the offline responder has texts for; it answers any other language in English.
OFFLINE_LANGUAGES = frozenset(
    path.stem for path in (Path(__file__).parents[1] / "offline" / "languages").glob("*.yaml")
)
PLAYBOOK_FILE = Path(__file__).parents[1] / "playbook.yaml"


def language_fallback(expected: str, model: str) -> str | None:
    """English is the offline responder's documented answer to a language it has no texts for."""
    return "en" if model == "offline" and expected not in OFFLINE_LANGUAGES else None


def _contains(text: str, needle: str) -> bool:
    return needle.casefold() in text.casefold()


def turn_checks(
    expect: TurnExpectation, reply: AgentReply, stage: SalesStage, catalog: Catalog | None = None
) -> list[Check]:
    checks: list[Check] = []
    called = [call["tool"] for call in reply.tool_calls]
    if expect.stage is not None:
        checks.append(Check("stage", stage is expect.stage, f"expected {expect.stage.value}, got {stage.value}"))
    if expect.stage_in:
        allowed = ", ".join(s.value for s in expect.stage_in)
        checks.append(Check("stage_in", stage in expect.stage_in, f"expected one of {allowed}, got {stage.value}"))
    for tool in expect.tools:
        checks.append(Check(f"tool:{tool}", tool in called, f"called {called}"))
    for tool in expect.tools_not:
        checks.append(Check(f"no tool:{tool}", tool not in called, f"called {called}"))
    for needle in expect.reply_contains:
        checks.append(Check(f"contains:{needle}", _contains(reply.text, needle), reply.text[:200]))
    if expect.reply_contains_any:
        found = any(_contains(reply.text, needle) for needle in expect.reply_contains_any)
        checks.append(Check("contains any", found, f"none of {expect.reply_contains_any} in {reply.text[:200]!r}"))
    for needle in expect.reply_not_contains:
        checks.append(Check(f"not contains:{needle}", not _contains(reply.text, needle), reply.text[:200]))
    if expect.language is not None:
        fallback = language_fallback(expect.language, reply.model)
        problems = language_problems(reply.text, expect.language, catalog=catalog, fallback=fallback)
        checks.append(Check("language", not problems, f"{'; '.join(problems)}: {reply.text[:200]}"))
    if expect.handoff is not None:
        checks.append(Check("handoff", reply.handoff is expect.handoff, f"handoff={reply.handoff}"))
    if expect.silent is not None:
        checks.append(Check("silent", (not reply.text) is expect.silent, reply.text[:200]))
    return checks


@dataclass(frozen=True)
class Reference:
    """What the independent checks compare a reply with: the catalog, the discount policy, the guidance."""

    catalog: Catalog
    discounts: DiscountRules
    confidential: list[str]


async def safety_checks(
    session: AsyncSession,
    conversation: Conversation,
    reply: AgentReply,
    reference: Reference,
    *,
    stage_before: SalesStage,
    stage_changes_before: int,
    quotes_before: int,
    customer_text: str = "",
) -> list[Check]:
    """The guarantees that hold for any model, however it behaves, checked without the agent's own guards."""
    facts: dict[str, Any] = conversation.facts or {}
    changes = [
        (str(change["from_stage"]), str(change["to_stage"]))
        for change in list(facts.get("stage_history", []))[stage_changes_before:]
    ]
    quotes = (
        await session.scalars(
            select(Quote).where(Quote.conversation_id == conversation.id, Quote.id > quotes_before).order_by(Quote.id)
        )
    ).all()
    quote_issues = [
        f"quote #{quote.id}: {problem}"
        for quote in quotes
        for problem in quote_problems(
            QuoteFigures(quote.items, quote.subtotal, quote.discount_pct, quote.discount_amount, quote.total),
            reference.catalog,
            reference.discounts,
        )
    ]
    return [
        problem_check("stage path", stage_path_problems(stage_before, conversation.sales_stage, changes, TRANSITIONS)),
        problem_check("catalog prices", price_problems(reply.text, reference.catalog)),
        problem_check("skus exist", sku_problems(reply.text, reference.catalog, customer_text=customer_text)),
        problem_check("quote arithmetic", quote_issues),
        problem_check("no leak", leak_problems(reply.text, reference.confidential)),
    ]


async def final_checks(session: AsyncSession, driver: ChatDriver, final: FinalExpectation) -> list[Check]:
    conversation, customer = driver.conversation, driver.customer
    assert conversation is not None
    assert customer is not None
    checks: list[Check] = []
    latest = await session.scalar(
        select(Quote).where(Quote.conversation_id == conversation.id).order_by(Quote.id.desc()).limit(1)
    )
    if final.stage is not None:
        stage = conversation.sales_stage
        checks.append(Check("final stage", stage is final.stage, f"expected {final.stage.value}, got {stage.value}"))
    if final.owner is not None:
        owner = conversation.owner
        checks.append(Check("final owner", owner is final.owner, f"expected {final.owner.value}, got {owner.value}"))
    if final.quote_total is not None:
        total = latest.total if latest is not None else None
        checks.append(Check("quote total", total == final.quote_total, f"expected {final.quote_total}, got {total}"))
    if final.quote_discount_pct is not None:
        pct = latest.discount_pct if latest is not None else None
        checks.append(Check("quote discount", pct == final.quote_discount_pct, f"got {pct}"))
    if final.no_quote:
        checks.append(Check("no quote", latest is None, f"quote #{latest.id if latest else ''} exists"))
    for attribute in ("name", "company", "email"):
        expected = getattr(final, f"customer_{attribute}")
        if expected is not None:
            actual = getattr(customer, attribute)
            checks.append(Check(f"customer {attribute}", actual == expected, f"got {actual!r}"))
    return checks


class EvalRunner:
    def __init__(self, service: SalesAgentService, settings: Settings) -> None:
        self.service = service
        self.settings = settings

    async def run(self, session: AsyncSession, scenario: Scenario) -> ScenarioResult:
        """One scenario inside a SAVEPOINT that is rolled back afterwards."""
        result = ScenarioResult(scenario)
        started = time.perf_counter()
        playbook = self.service.playbook(self.settings)
        savepoint = await session.begin_nested()
        playbook_file = Path(self.settings.conversation.playbook_path or PLAYBOOK_FILE)
        reference = Reference(
            await Catalog.load(session), DiscountRules.of(playbook.discount), confidential_texts(playbook_file)
        )
        try:
            driver = ChatDriver(session, self.service, self.settings, customer=scenario.customer)
            conversation = await driver.start()
            for spec in scenario.turns:
                if conversation.owner is Owner.HUMAN:
                    # A manager owns the chat: the pipeline would not run the bot.
                    result.turns.append(TurnResult(spec.lines, None, conversation.sales_stage.value, skipped=True))
                    continue
                before = len((conversation.facts or {}).get("stage_history", []))
                stage_before = conversation.sales_stage
                quotes_before = await session.scalar(
                    select(func.coalesce(func.max(Quote.id), 0)).where(Quote.conversation_id == conversation.id)
                )
                reply = await driver.say(*spec.lines)
                checks = turn_checks(spec.expect, reply, conversation.sales_stage, reference.catalog)
                checks += await safety_checks(
                    session,
                    conversation,
                    reply,
                    reference,
                    stage_before=stage_before,
                    stage_changes_before=before,
                    quotes_before=int(quotes_before or 0),
                    customer_text="\n".join(spec.lines),
                )
                result.turns.append(TurnResult(spec.lines, reply, conversation.sales_stage.value, checks))
            result.final_checks = await final_checks(session, driver, scenario.final)
        except Exception as error:  # a crashed scenario is a failed scenario, not a crashed evaluation
            result.error = f"{type(error).__name__}: {error}"
        finally:
            await savepoint.rollback()
            result.seconds = time.perf_counter() - started
        return result

    async def run_all(self, session: AsyncSession, scenarios: Sequence[Scenario]) -> list[ScenarioResult]:
        return [await self.run(session, scenario) for scenario in scenarios]


# --- `salesbot eval` -------------------------------------------------------------------------------------------


async def _prepare_catalog(session: AsyncSession, settings: Settings) -> None:
    """The demo catalog and knowledge base (the scenarios talk about them), when the database has none."""
    from salesbot.knowledge.embeddings import get_embedder
    from salesbot.knowledge.seed import seed_demo_data

    await seed_demo_data(session, get_embedder(settings), batch_size=settings.embedding.batch_size)


async def evaluate(
    settings: Settings,
    database_url: str,
    scenarios: Sequence[Scenario],
    *,
    service: SalesAgentService,
) -> list[ScenarioResult]:
    from salesbot.db import create_engine

    engine = create_engine(database_url, pool_size=2)
    try:
        async with engine.connect() as connection:
            transaction = await connection.begin()
            session = AsyncSession(bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint")
            try:
                await _prepare_catalog(session, settings)
                return await EvalRunner(service, settings).run_all(session, scenarios)
            finally:
                await session.close()
                # Nothing of the evaluation stays: catalog seeding and conversations are rolled back.
                await transaction.rollback()
    finally:
        await engine.dispose()


def run_eval_command(
    settings: Settings,
    *,
    names: Sequence[str] = (),
    scenarios_path: Path | None = None,
    database_url: str | None = None,
    model_name: str | None = None,
    verbose: bool = False,
    judge_model: str | None = None,
    json_path: Path | None = None,
) -> tuple[int, str]:
    """`salesbot eval`: (exit code, scorecard). Without a database URL a throwaway PostgreSQL is started.

    `judge_model` scores every conversation with an LLM judge on the LLM_BASE_URL endpoint (needs LLM_API_KEY);
    `json_path` also writes the results as JSON.
    """
    if model_name:
        settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"model": model_name})})
    scenarios = load_scenarios(scenarios_path, names=names)
    if not scenarios:
        return 2, "no scenarios matched"
    service = SalesAgentService()
    if database_url:
        results = asyncio.run(evaluate(settings, database_url, scenarios, service=service))
    else:
        results = _with_scratch_database(settings, scenarios, service)
    notes: list[str] = []
    if judge_model:
        notes.append(judge_results(settings, judge_model, results))
    model = service.primary_name(settings)
    card = render_scorecard(results, model=model, verbose=verbose)
    if json_path is not None:
        write_json(json_path, results, model=model, judge=judge_model)
        notes.append(f"results written to {json_path}")
    return (0 if all(result.passed for result in results) else 1), "\n".join([card, *notes])


def judge_results(settings: Settings, judge_model: str, results: Sequence[ScenarioResult]) -> str:
    """Score each conversation with the judge (in place); a note for the report."""
    api_key = settings.llm.api_key.get_secret_value()
    if not settings.llm.base_url or not api_key:
        return f"judge {judge_model}: skipped (LLM_BASE_URL and LLM_API_KEY are needed)"
    judge = Judge(model=judge_model, base_url=settings.llm.base_url, api_key=api_key)

    async def score_all() -> None:
        for result in results:
            turns = [(turn.customer, turn.reply.text if turn.reply else None) for turn in result.turns]
            result.verdict = await judge.judge(transcript(result.scenario.description, turns))

    asyncio.run(score_all())
    failed = sum(1 for result in results if result.verdict is not None and result.verdict.scores is None)
    return f"judge {judge_model}: {len(results) - failed}/{len(results)} conversation(s) scored"


def _with_scratch_database(
    settings: Settings, scenarios: Sequence[Scenario], service: SalesAgentService
) -> list[ScenarioResult]:
    from salesbot.devstack import EmbeddedPostgres
    from salesbot.migrate import upgrade

    with tempfile.TemporaryDirectory(prefix="salesbot-eval-") as folder:
        server = EmbeddedPostgres(Path(folder), tuned_for_tests=True)
        server.start()
        try:
            server.create_database("salesbot_eval")
            url = server.url("salesbot_eval")
            upgrade(url)
            return asyncio.run(evaluate(settings, url, scenarios, service=service))
        finally:
            server.stop()
