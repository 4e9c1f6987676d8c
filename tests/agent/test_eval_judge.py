"""The LLM judge against the recording fake OpenAI-compatible server, and `salesbot eval --judge/--json`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from salesbot.agent.eval.judge import Judge, transcript
from salesbot.cli import main
from salesbot.settings import get_settings
from tests.fakes.llm import FakeLLM

SCORES = '{"helpfulness": 4, "tone": 5, "correctness": 3, "comment": "Clear options, no upsell."}'


async def test_the_judge_sends_the_transcript_and_reads_the_json_scores() -> None:
    async with FakeLLM(reply=SCORES).serving() as llm:
        judge = Judge(model="judge-model", base_url=llm.base_url, api_key="test-key")
        text = transcript("a customer buys printers", [(["I need 3 printers"], "Here are three options.")])
        verdict = await judge.judge(text)

    assert verdict.error is None
    assert verdict.scores is not None
    assert (verdict.scores.helpfulness, verdict.scores.tone, verdict.scores.correctness) == (4, 5, 3)
    [call] = llm.calls
    assert call.model == "judge-model"
    assert "Customer: I need 3 printers" in call.prompt
    assert "Assistant: Here are three options." in call.prompt
    assert '"helpfulness"' in call.system


@pytest.mark.parametrize(
    ("behaviour", "reply"),
    [("ok", "I think it was quite good."), ("ok", '{"helpfulness": 9, "tone": 5, "correctness": 3}'), ("500", "")],
)
async def test_a_judge_that_fails_is_reported_not_fatal(behaviour: str, reply: str) -> None:
    async with FakeLLM(default_behaviour=behaviour, reply=reply or SCORES).serving() as llm:
        verdict = await Judge(model="judge-model", base_url=llm.base_url, api_key="k").judge("Customer: hi")

    assert verdict.scores is None
    assert verdict.error


def test_salesbot_eval_with_a_judge_writes_scores_to_json(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeLLM(reply=SCORES).in_thread() as llm:
        monkeypatch.setenv("LLM_BASE_URL", llm.base_url)
        monkeypatch.setenv("LLM_API_KEY", "test-key")
        get_settings.cache_clear()
        try:
            out_file = tmp_path / "eval.json"
            args = ["eval", "--database-url", database_url, "-k", "compare-en", "--model", "offline"]
            code = main([*args, "--judge", "judge-model", "--json", str(out_file)])
        finally:
            get_settings.cache_clear()

    out = capsys.readouterr().out
    assert code == 0, out
    assert "judge judge-model: 1/1 conversation(s) scored" in out
    assert "judge (mean 1-5):  helpfulness 4.00  tone 5.00  correctness 3.00" in out
    assert llm.answered_by("judge-model") == 1
    data = json.loads(out_file.read_text(encoding="utf-8"))
    [scenario] = data["scenarios"]
    assert scenario["name"] == "compare-en"
    assert scenario["judge"]["scores"]["tone"] == 5
    assert data["summary"]["scenarios_passed"] == 1
    assert data["summary"]["per_check"]["catalog prices"]["passed"] >= 1


def test_salesbot_eval_skips_the_judge_without_a_key(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "--database-url", database_url, "-k", "compare-en", "--judge", "judge-model"])

    out = capsys.readouterr().out
    assert code == 0, out
    assert "judge judge-model: skipped (LLM_BASE_URL and LLM_API_KEY are needed)" in out
