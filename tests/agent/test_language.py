"""Language detection per message and the conversation's language."""

from __future__ import annotations

import pytest

from salesbot.agent.language import conversation_language, detect_language, layout_slip


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


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Привіт, потрібен ноутбук для офісу", "uk"),
        ("Здравствуйте, нужен ноутбук для офиса", "ru"),
        ("سلام، یک لپ تاپ برای دفتر می خواهم", "fa"),
        ("مرحبا، أريد لابتوب للمكتب", "ar"),
        ("Ich brauche fünf Laptops für unser Büro", "de"),
        ("Bonjour, je cherche une imprimante laser", "fr"),
        ("Hola, necesito cinco portátiles para la oficina", "es"),
        ("Merhaba, ofis için dizüstü bilgisayar lazım", "tr"),
        ("मुझे पांच लैपटॉप चाहिए", "hi"),
    ],
)
def test_languages_beyond_the_three_scripts(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_a_short_reply_typed_with_the_wrong_keyboard_layout_keeps_the_language() -> None:
    assert layout_slip("нуы", "en") == "yes"
    assert layout_slip("lf", "ru") == "да"
    assert layout_slip("yes", "en") is None
    assert conversation_language(["ыгку"], current="en") == "en"
    assert conversation_language(["Здравствуйте, нужен принтер"], current="en") == "ru"
