"""Text helpers shared by the offline embedder, the full-text query builder and ingestion.

Normalization is language-agnostic (Unicode NFKC + case folding) with a few orthographic folds that matter for
the languages the demo business serves: Arabic letter variants and diacritics, and Russian `ё`. The stopword
list holds function words and chat filler of English, Arabic and Russian; it only removes noise (a word that
is not in it is always kept), so other languages still work, just with a little more noise.
"""

from __future__ import annotations

import re
import unicodedata

from salesbot.kit import language as kit_language

# Arabic harakat (fathatan .. sukun), superscript alef and tatweel: optional marks that customers rarely type.
_ARABIC_MARKS = re.compile("[\u064b-\u0652\u0670\u0640]")
_FOLD = str.maketrans(
    {
        "أ": "ا",
        "إ": "ا",
        "آ": "ا",
        "ٱ": "ا",
        "ى": "ي",
        "ة": "ه",
        "ؤ": "و",
        "ئ": "ي",
        "ё": "е",
    }
)
# Arabic definite-article and conjunction prefixes ("ال", "وال", "بال", "لل"...): stripped when enough of the
# word remains, so "الطابعة" and "طابعة" meet (a light stemmer in the spirit of ISRI's prefix rules).
_ARABIC_PREFIXES = ("وال", "بال", "كال", "فال", "لل", "ال")
_WORD = re.compile(r"\w+", re.UNICODE)

STOPWORDS = frozenset(
    """
    a an the and or of to in on at for with from by about as is are was were be been am do does did have has
    had i me my we our you your he she it its they them this that these those there here what which who whom
    how when where why can could would should will shall may might must please pls plz hi hello hey dear
    thanks thank any some need needs want wants wanted looking look find show tell give get got let us
    also just only very much many more most not no yes ok okay sir madam
    и в во на с со к ко у о об от до по за из для что как это этот эта эти то та те же ли бы не нет да
    а но или мне мой моя мои вам вас вы ты тебя меня мы нам нас он она они его ее её их есть был была было
    нужен нужна нужно нужны хочу хотим хотел хотела ищу ищем покажите покажи подскажите скажите пожалуйста
    здравствуйте привет добрый день спасибо какой какая какие какое можно ещё еще очень
    في من الى إلى على عن مع او أو و ثم هل ما ماذا كم هذا هذه ذلك تلك هو هي هم انا أنا انت أنت نحن لي لك
    لكم عندكم عندك عندي اريد أريد نريد ابحث أبحث ممكن لو سمحت من فضلك مرحبا السلام عليكم شكرا اي أي
    """.split()  # noqa: SIM905  (a word list reads better as text)
)
STOPWORDS_FOLDED = frozenset(word.translate(_FOLD) for word in STOPWORDS)


def normalize(text: str) -> str:
    """NFKC, case-folded, Arabic marks removed and letter variants folded (so spelling variants meet)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _ARABIC_MARKS.sub("", text).translate(_FOLD)


def _strip_arabic_prefix(word: str) -> str:
    for prefix in _ARABIC_PREFIXES:
        if word.startswith(prefix) and len(word) - len(prefix) >= 3:
            return word[len(prefix) :]
    return word


def content_words(text: str) -> list[str]:
    """Normalized words without stopwords, Arabic article prefixes stripped (for the offline embedder)."""
    words: list[str] = []
    for word in _WORD.findall(normalize(text)):
        if word in STOPWORDS_FOLDED:
            continue
        if "\u0600" <= word[0] <= "\u06ff":
            word = _strip_arabic_prefix(word)
        words.append(word)
    return words


def fulltext_query(query: str) -> str:
    """Customer text made safe for `websearch_to_tsquery`: stopwords dropped, no accidental operators.

    A lone quote (`27"` for inches) would turn the rest of the query into one phrase and a leading dash would
    negate a word, so unbalanced quotes, dashes before words and the `or` keyword are removed; balanced quotes
    keep their phrase meaning. Returns "" when nothing searchable is left.
    """
    if query.count('"') % 2:
        query = query.replace('"', " ")
    kept: list[str] = []
    for index, part in enumerate(query.split('"')):
        if index % 2:  # inside quotes: a phrase, kept verbatim
            if _WORD.search(part):
                kept.append(f'"{part.strip()}"')
            continue
        for raw in part.split():
            token = raw.lstrip("-")
            bare = normalize(token.strip(".,;:!?()[]{}'؟،"))
            if _WORD.search(bare) and bare not in STOPWORDS_FOLDED and bare != "or":
                kept.append(token)
    return " ".join(kept)


def detect_language(text: str) -> str:
    """The language of a knowledge chunk (the project's one detector; English when it cannot tell)."""
    return kit_language.detect_language(text) or "en"


def shorten(text: str, limit: int) -> str:
    """`text` cut at a word boundary to at most `limit` characters, with an ellipsis when cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + "…"
