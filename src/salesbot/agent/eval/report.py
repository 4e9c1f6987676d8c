"""The evaluation's report: the readable scorecard (per scenario, per check) and the results as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from salesbot.agent.eval.checks import Check
from salesbot.agent.eval.judge import Verdict

if TYPE_CHECKING:
    from salesbot.agent.eval.runner import ScenarioResult

ASPECTS = ("helpfulness", "tone", "correctness")


def _verdict_text(verdict: Verdict) -> str:
    if verdict.scores is None:
        return f"failed ({verdict.error})"
    scores = verdict.scores
    return f"helpfulness {scores.helpfulness}  tone {scores.tone}  correctness {scores.correctness}  {scores.comment}"


def check_summary(results: Sequence[ScenarioResult]) -> dict[str, tuple[int, int]]:
    """Per check name (tool and phrase checks grouped by their kind): (passed, total)."""
    summary: dict[str, tuple[int, int]] = {}
    for check in (check for result in results for check in result.checks):
        name = check.name.split(":", 1)[0]
        passed, total = summary.get(name, (0, 0))
        summary[name] = (passed + check.passed, total + 1)
    return dict(sorted(summary.items()))


def _table(summary: dict[str, tuple[int, int]]) -> list[str]:
    width = max((len(name) for name in summary), default=10)
    return [f"  {name:<{width}}  {passed:>4}/{total}" for name, (passed, total) in summary.items()]


def _check(check: Check) -> dict[str, Any]:
    return {"name": check.name, "passed": check.passed, "safety": check.safety, "detail": check.detail}


def to_json(results: Sequence[ScenarioResult], *, model: str, judge: str | None = None) -> dict[str, Any]:
    checks = [check for result in results for check in result.checks]
    return {
        "model": model,
        "judge": judge,
        "summary": {
            "scenarios": len(results),
            "scenarios_passed": sum(result.passed for result in results),
            "checks": len(checks),
            "checks_passed": sum(check.passed for check in checks),
            "safety_checks": sum(check.safety for check in checks),
            "safety_checks_passed": sum(check.passed for check in checks if check.safety),
            "per_check": {name: {"passed": p, "total": t} for name, (p, t) in check_summary(results).items()},
        },
        "scenarios": [
            {
                "name": result.scenario.name,
                "tags": result.scenario.tags,
                "passed": result.passed,
                "error": result.error,
                "seconds": round(result.seconds, 3),
                "turns": [
                    {
                        "customer": turn.customer,
                        "reply": turn.reply.text if turn.reply else None,
                        "model": turn.reply.model if turn.reply else None,
                        "stage": turn.stage,
                        "skipped": turn.skipped,
                        "checks": [_check(check) for check in turn.checks],
                    }
                    for turn in result.turns
                ],
                "final_checks": [_check(check) for check in result.final_checks],
                "judge": (
                    None
                    if result.verdict is None
                    else {
                        "scores": result.verdict.scores.model_dump() if result.verdict.scores else None,
                        "error": result.verdict.error,
                    }
                ),
            }
            for result in results
        ],
    }


def write_json(path: Path, results: Sequence[ScenarioResult], *, model: str, judge: str | None = None) -> None:
    data = to_json(results, model=model, judge=judge)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")


def render_scorecard(results: Sequence[ScenarioResult], *, model: str, verbose: bool = False) -> str:
    lines = [f"salesbot eval: {len(results)} scenario(s) against {model}", ""]
    width = max((len(r.scenario.name) for r in results), default=10)
    for result in results:
        checks = result.checks
        passed = sum(check.passed for check in checks)
        status = "PASS" if result.passed else "FAIL"
        replies = [turn.reply for turn in result.turns if turn.reply is not None]
        models = sorted({reply.model for reply in replies})
        fallback = any(reply.fallback_used for reply in replies)
        tokens = sum(reply.tokens_in + reply.tokens_out for reply in replies)
        lines.append(
            f"{status}  {result.scenario.name:<{width}}  checks {passed:>3}/{len(checks):<3}  "
            f"turns {len(result.turns):>2}  model {','.join(models) or '-'}{' (fallback)' if fallback else ''}  "
            f"tokens {tokens}  {result.seconds:.1f}s"
        )
        if result.error:
            lines.append(f"      error: {result.error}")
        if result.verdict is not None:
            lines.append(f"      judge: {_verdict_text(result.verdict)}")
        for index, turn in enumerate(result.turns, start=1):
            failed = [check for check in turn.checks if not check.passed]
            if verbose or failed:
                lines.append(f"      turn {index}: customer: {' / '.join(turn.customer)}")
                if turn.reply is not None:
                    reply = " ".join(turn.reply.text.split())
                    lines.append(f"              bot [{turn.stage}]: {reply[:300]}")
            for check in failed:
                kind = "SAFETY" if check.safety else "check"
                lines.append(f"        {kind} failed: {check.name}: {check.detail}")
        for check in result.final_checks:
            if not check.passed:
                lines.append(f"        final check failed: {check.name}: {check.detail}")
    total_checks = [check for result in results for check in result.checks]
    safety = [check for check in total_checks if check.safety]
    lines += [
        "",
        f"scenarios passed: {sum(r.passed for r in results)}/{len(results)}",
        f"checks passed:    {sum(c.passed for c in total_checks)}/{len(total_checks)}",
        f"safety checks:    {sum(c.passed for c in safety)}/{len(safety)}",
    ]
    scored = [r.verdict.scores for r in results if r.verdict is not None and r.verdict.scores is not None]
    if scored:
        means = {aspect: sum(getattr(s, aspect) for s in scored) / len(scored) for aspect in ASPECTS}
        lines.append("judge (mean 1-5):  " + "  ".join(f"{aspect} {value:.2f}" for aspect, value in means.items()))
    lines += ["", "per check:", *_table(check_summary(results))]
    return "\n".join(lines)
