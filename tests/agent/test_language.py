"""Language detection per message and the conversation's language."""

from __future__ import annotations

import pytest

from salesbot.agent.language import conversation_language, detect_language


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Hello, I need a printer", "en"),
        ("Здравствуйте, нужен принтер HP-LJM211DW", "ru"),
        ("مرحبا، أريد طابعة HP-LJM211DW", "ar"),
        ("ok", None),
        ("👍", None),
        ("HP-LJM211DW x3", None),
        ("[EMAIL_1] [PHONE_2]", None),
    ],
)
def test_detect_language(text: str, language: str | None) -> None:
    assert detect_language(text) == language


def test_conversation_keeps_its_language_on_neutral_messages_and_follows_a_switch() -> None:
    assert conversation_language(["👍", "ok"], current="ru") == "ru"
    assert conversation_language(["Привет", "Actually, can we continue in English?"], current="ru") == "en"
    assert conversation_language(["123"], current=None, default="ar") == "ar"
