"""Text normalization, the full-text query cleaner, language tags and shortening."""

from __future__ import annotations

import pytest

from salesbot.knowledge.text import content_words, detect_language, fulltext_query, normalize, shorten


def test_normalize_folds_variants() -> None:
    assert normalize("ＨＰ LaserJet") == "hp laserjet"
    assert normalize("أَحْمَد إلى آلة") == "احمد الي اله"
    assert normalize("Ёлка") == "елка"
    assert normalize("طابعـــة") == "طابعه"


def test_content_words() -> None:
    assert content_words("Do you have the HP printer?") == ["hp", "printer"]
    assert content_words("الطابعة والكمبيوتر") == ["طابعه", "كمبيوتر"]
    assert content_words("нужен ноутбук для офиса") == ["ноутбук", "офиса"]
    assert content_words("hello, please") == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('27" monitor Samsung', "27 monitor Samsung"),
        ('"dual band" router', '"dual band" router'),
        ("laptop -gaming", "laptop gaming"),
        ("do you have a cheap laptop?", "cheap laptop?"),
        ("Wi-Fi 6 or better", "Wi-Fi 6 better"),
        ("hello!", ""),
        ('"', ""),
        ("", ""),
    ],
)
def test_fulltext_query(query: str, expected: str) -> None:
    assert fulltext_query(query) == expected


def test_detect_language() -> None:
    assert detect_language("Delivery to Dubai") == "en"
    assert detect_language("التوصيل إلى دبي خلال يوم") == "ar"
    assert detect_language("Доставка в Дубай, Wi-Fi") == "ru"
    assert detect_language("12345") == "en"


def test_shorten() -> None:
    assert shorten("short  text\nhere", 50) == "short text here"
    cut = shorten("word " * 100, 40)
    assert len(cut) <= 40
    assert cut.endswith("…")
    assert "  " not in cut
