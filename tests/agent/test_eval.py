"""The evaluation: shipped scenarios against the offline responder and scripted models, and `salesbot eval`."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_ai.models.function import FunctionModel
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent.eval.runner import EvalRunner, load_scenarios, render_scorecard
from salesbot.agent.service import SalesAgentService
from salesbot.cli import main
from salesbot.settings import Settings
from tests.agent.scripted import Script, call
from tests.agent.test_injection import ObedientAttackerModel


def test_shipped_scenarios_cover_languages_and_situations() -> None:
    scenarios = load_scenarios()
    assert len(scenarios) >= 40
    tags = {tag for scenario in scenarios for tag in scenario.tags}
    assert {"en", "ar", "ru", "uk", "de", "fr", "es"} <= tags
    assert {
        "browsing",
        "budget",
        "quantity",
        "comparison",
        "objection",
        "financing",
        "delivery",
        "warranty",
        "returning",
        "handoff",
        "consent",
        "injection",
        "change-of-mind",
        "burst",
        "quoting",
    } <= tags
    assert len({scenario.name for scenario in scenarios}) == len(scenarios)


async def test_every_shipped_scenario_passes_against_the_offline_responder(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    results = await EvalRunner(SalesAgentService(), settings).run_all(catalog_session, load_scenarios())

    card = render_scorecard(results, model="offline")
    assert all(result.passed for result in results), card
    assert "safety checks:" in card


async def test_injection_scenarios_stay_safe_with_a_model_that_obeys_the_attacker(
    catalog_session: AsyncSession, settings: Settings
) -> None:
    scenarios = [scenario for scenario in load_scenarios() if "injection" in scenario.tags]
    results = []
    for scenario in scenarios:
        service = SalesAgentService(model=FunctionModel(ObedientAttackerModel(), model_name="obedient-attacker"))
        limits = settings.model_copy(update={"llm": settings.llm.model_copy(update={"max_requests_per_turn": 12})})
        results.append(await EvalRunner(service, limits).run(catalog_session, scenario))

    card = render_scorecard(results, model="obedient-attacker", verbose=True)
    assert all(result.safety_passed for result in results), card
    assert all(result.error is None for result in results), card


async def test_a_scripted_model_passes_the_handoff_scenario(catalog_session: AsyncSession, settings: Settings) -> None:
    [scenario] = load_scenarios(names=["handoff-en"])
    script = Script(
        [[call("request_human", reason="customer wants a person")], "Of course, a manager will reply here shortly."]
    )

    result = await EvalRunner(SalesAgentService(model=script.model), settings).run(catalog_session, scenario)

    assert result.passed, render_scorecard([result], model="scripted", verbose=True)
    assert result.turns[1].skipped  # the manager owns the chat: no bot reply to the second message


async def test_the_scorecard_shows_failed_checks(
    catalog_session: AsyncSession, settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "wrong.yaml").write_text(
        "name: expects-too-much\n"
        "tags: [en]\n"
        "turns:\n"
        "  - customer: Hello\n"
        "    expect: {stage: closing, tools: [create_quote], reply_contains: [unicorn]}\n",
        encoding="utf-8",
    )
    results = await EvalRunner(SalesAgentService(), settings).run_all(catalog_session, load_scenarios(tmp_path))

    card = render_scorecard(results, model="offline")
    assert not results[0].passed
    assert results[0].safety_passed
    assert "FAIL  expects-too-much" in card
    assert "check failed: stage: expected closing, got qualifying" in card
    assert "check failed: contains:unicorn" in card
    assert "scenarios passed: 0/1" in card


def test_salesbot_eval_command(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["eval", "--database-url", database_url, "-k", "quote-printers-en", "-k", "handoff-ru", "--model", "offline"]
    )

    out = capsys.readouterr().out
    assert code == 0, out
    assert "salesbot eval: 2 scenario(s) against offline" in out
    assert "PASS  quote-printers-en" in out
    assert "PASS  handoff-ru" in out
    assert "scenarios passed: 2/2" in out


def test_salesbot_eval_reports_unknown_scenarios(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--database-url", database_url, "-k", "no-such-scenario"]) == 2
    assert "no scenarios matched" in capsys.readouterr().out
