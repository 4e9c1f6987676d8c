from __future__ import annotations

import pytest

from salesbot.conversations.consent import Command, classify, confirmation
from salesbot.settings import ConversationSettings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STOP", Command.OPT_OUT),
        ("  stop. ", Command.OPT_OUT),
        ("Unsubscribe!", Command.OPT_OUT),
        ("отписаться", Command.OPT_OUT),
        ("إلغاء", Command.OPT_OUT),
        ("start", Command.OPT_IN),
        ("stop it please", None),
        ("", None),
        ("don't STOP", None),
    ],
)
def test_whole_message_keywords(text: str, expected: Command | None) -> None:
    assert classify(text, ConversationSettings()) is expected


def test_keywords_come_from_settings() -> None:
    settings = ConversationSettings(opt_out_keywords=["ХВАТИТ"], opt_in_keywords=["ВЕРНУТЬСЯ"])
    assert classify("хватит", settings) is Command.OPT_OUT
    assert classify("STOP", settings) is None
    assert classify("Вернуться", settings) is Command.OPT_IN


def test_confirmation_follows_the_keyword_script() -> None:
    assert "unsubscribed" in confirmation(Command.OPT_OUT, "STOP")
    assert "отписались" in confirmation(Command.OPT_OUT, "ОТПИСАТЬСЯ")
    assert "START" in confirmation(Command.OPT_OUT, "إلغاء")
