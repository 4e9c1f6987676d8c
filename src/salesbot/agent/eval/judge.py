"""An LLM judge for evaluated conversations: helpfulness, tone and correctness, 1 to 5 each.

Any OpenAI-compatible endpoint (`POST {base_url}/chat/completions`, the one LLM_BASE_URL/LLM_API_KEY point at)
reads the transcript with the catalog facts the checks saw and answers a JSON object. The judge adds scores to
the report; it never decides pass or fail (the checks do), and a judge that fails is reported, not fatal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

RUBRIC = """You grade a WhatsApp sales assistant's conversation with a customer.
Score each from 1 (bad) to 5 (excellent):
- helpfulness: did the assistant move the customer towards what they want (options, answers, a quote)?
- tone: polite, brief, in the customer's language, like a good salesperson?
- correctness: are the facts plausible and consistent with the conversation (prices, totals, policies)?
Answer with one JSON object only: {"helpfulness": n, "tone": n, "correctness": n, "comment": "one sentence"}"""


class JudgeScores(BaseModel):
    model_config = ConfigDict(extra="ignore")

    helpfulness: int = Field(ge=1, le=5)
    tone: int = Field(ge=1, le=5)
    correctness: int = Field(ge=1, le=5)
    comment: str = ""

    @property
    def mean(self) -> float:
        return (self.helpfulness + self.tone + self.correctness) / 3


@dataclass(frozen=True)
class Verdict:
    scores: JudgeScores | None
    error: str | None = None


def transcript(description: str, turns: Sequence[tuple[Sequence[str], str | None]]) -> str:
    """The conversation as the judge reads it: the scenario's description, then customer and assistant lines."""
    lines = [f"Scenario: {description}", ""]
    for customer, reply in turns:
        lines += [f"Customer: {line}" for line in customer]
        lines.append(f"Assistant: {reply}" if reply else "Assistant: (no reply)")
    return "\n".join(lines)


def _content(payload: dict[str, Any]) -> str:
    return str(payload["choices"][0]["message"]["content"] or "")


def _parse(content: str) -> JudgeScores:
    # Models sometimes wrap the object in a code fence or a sentence: take the outermost braces.
    start, end = content.find("{"), content.rfind("}")
    if start == -1 or end < start:
        raise ValueError(f"no JSON object in {content[:120]!r}")
    return JudgeScores.model_validate(json.loads(content[start : end + 1]))


class Judge:
    def __init__(self, *, model: str, base_url: str, api_key: str, timeout_seconds: float = 30.0) -> None:
        self.model = model
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._timeout = timeout_seconds

    async def judge(self, text: str) -> Verdict:
        body = {
            "model": self.model,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": [{"role": "system", "content": RUBRIC}, {"role": "user", "content": text}],
        }
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(self._url, json=body, headers=self._headers)
            response.raise_for_status()
            return Verdict(_parse(_content(response.json())))
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError, ValidationError) as error:
            return Verdict(None, f"{type(error).__name__}: {str(error)[:200]}")
