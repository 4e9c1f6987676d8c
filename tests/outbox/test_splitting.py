from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from salesbot.outbox.splitting import split_text


def test_short_text_is_one_part() -> None:
    assert split_text("  Hello there.  ", 100) == ["Hello there."]
    assert split_text("   ", 100) == []


def test_paragraphs_then_sentences_then_words() -> None:
    text = "First paragraph is here.\n\nSecond one. It has two sentences!\n\nThird"
    # Paragraphs are packed while they fit ...
    assert split_text(text, 40) == ["First paragraph is here.", "Second one. It has two sentences!\n\nThird"]
    # ... and one that does not fit is split between sentences.
    assert split_text(text, 25) == ["First paragraph is here.", "Second one.", "It has two sentences!", "Third"]
    assert split_text("Alpha beta gamma delta", 11) == ["Alpha beta", "gamma delta"]
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_lines_inside_a_paragraph_are_kept() -> None:
    text = "Options:\n- oak table\n- pine table\n- steel table"
    assert split_text(text, 30) == ["Options:\n- oak table", "- pine table\n- steel table"]


def test_arabic_and_cyrillic_sentences() -> None:
    assert split_text("Привет! Как дела? Хорошо.", 12) == ["Привет!", "Как дела?", "Хорошо."]
    assert split_text("مرحبا؟ كيف حالك", 8) == ["مرحبا؟", "كيف حالك"]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab .!?\n")), max_size=400), st.integers(min_value=1, max_value=60))
def test_parts_fit_and_keep_every_word_in_order(text: str, limit: int) -> None:
    parts = split_text(text, limit)
    assert all(0 < len(part) <= limit for part in parts)
    assert "".join("".join(parts).split()) == "".join(text.split())
