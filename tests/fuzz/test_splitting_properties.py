"""Property tests of the reply splitter over all of Unicode (tests/outbox/test_splitting.py checks a small
alphabet): parts fit, nothing is lost or reordered, words that fit are never cut, and a part is already final."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from salesbot.outbox.splitting import split_text

words = st.text(alphabet=st.characters(exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=25)
separators = st.sampled_from([" ", "  ", "\n", "\n\n", "\t", "\u00a0", ". ", "! ", "? ", "؟ ", "。", "… ", "\r\n"])
texts = st.lists(st.tuples(words, separators), max_size=60).map(lambda pairs: "".join(w + s for w, s in pairs))
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))


@given(text=texts | st.text(max_size=300), limit=st.integers(min_value=1, max_value=120))
@FUZZ
def test_parts_fit_and_keep_every_character_in_order(text: str, limit: int) -> None:
    parts = split_text(text, limit)
    assert all(0 < len(part) <= limit for part in parts)
    assert all(part == part.strip() for part in parts)
    assert "".join("".join(parts).split()) == "".join(text.split())


@given(text=texts, limit=st.integers(min_value=25, max_value=200))
@FUZZ
def test_words_that_fit_are_never_cut(text: str, limit: int) -> None:
    # A "word" is what whitespace separates ("a。b" is one: CJK punctuation carries no space after it).
    assume(all(len(word) <= limit for word in text.split()))
    parts = split_text(text, limit)
    assert [word for part in parts for word in part.split()] == text.split()


@given(text=texts, limit=st.integers(min_value=1, max_value=200))
@FUZZ
def test_a_part_splits_into_itself(text: str, limit: int) -> None:
    for part in split_text(text, limit):
        assert split_text(part, limit) == [part]
