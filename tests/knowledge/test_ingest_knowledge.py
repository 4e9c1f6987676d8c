"""Knowledge documents: chunking by headings and paragraphs with overlap, and idempotent ingestion."""

from __future__ import annotations

import itertools
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.knowledge.chunking import chunk_file, chunk_markdown, chunk_plain_text
from salesbot.knowledge.ingest import ingest_knowledge_path
from salesbot.knowledge.seed import DEMO_KNOWLEDGE
from salesbot.models import KnowledgeChunk
from tests.fakes.embedder import RecordingEmbedder

GUIDE = """# Delivery

Intro paragraph about delivery.

## Dubai

Next business day in Dubai.

## Other emirates

### Abu Dhabi

Two business days to Abu Dhabi.

```
# not a heading inside a code fence
```

## التوصيل

نوصل الطلبات إلى جميع الإمارات.
"""


def test_markdown_chunks_follow_the_heading_path() -> None:
    chunks = chunk_markdown(GUIDE, default_title="Guide")
    assert [(chunk.index, chunk.title) for chunk in chunks] == [
        (0, "Delivery"),
        (1, "Delivery › Dubai"),
        (2, "Delivery › Other emirates › Abu Dhabi"),
        (3, "Delivery › التوصيل"),
    ]
    assert chunks[2].content.startswith("Two business days")
    assert "# not a heading" in chunks[2].content
    assert [chunk.language for chunk in chunks] == ["en", "en", "en", "ar"]


def test_long_sections_are_packed_with_overlap() -> None:
    paragraphs = [f"Paragraph {number}. " + "Some words about the warranty terms. " * 8 for number in range(12)]
    text = "# Warranty\n\n" + "\n\n".join(paragraphs)
    chunks = chunk_markdown(text, default_title="w", max_chars=900, overlap_chars=400)
    assert len(chunks) > 3
    assert all(len(chunk.content) <= 900 for chunk in chunks)
    assert all(chunk.title == "Warranty" for chunk in chunks)
    # Each chunk starts with (the tail of) the previous chunk's last paragraph, and no paragraph is lost.
    for previous, current in itertools.pairwise(chunks):
        last = previous.content.split("\n\n")[-1]
        assert current.content.split("\n\n")[0] in last
    joined = "\n\n".join(chunk.content for chunk in chunks)
    assert all(paragraph.strip() in joined for paragraph in paragraphs)


def test_a_huge_paragraph_is_split_at_sentences_then_words() -> None:
    sentence = "A sentence about returns. "
    chunks = chunk_plain_text(sentence * 200 + "x" * 3000, title="Returns", max_chars=500, overlap_chars=0)
    assert all(len(chunk.content) <= 500 for chunk in chunks)
    assert chunks[0].content.startswith("A sentence about returns.")
    assert all(chunk.title == "Returns" for chunk in chunks)


def test_text_files_and_titles_from_file_names(tmp_path: Path) -> None:
    chunks = chunk_file(tmp_path / "opening_hours.txt", "We open at 9.\n\nWe close at 19.")
    assert [chunk.title for chunk in chunks] == ["Opening hours"]
    assert chunks[0].content == "We open at 9.\n\nWe close at 19."
    assert chunk_file(tmp_path / "empty.md", "\n\n") == []


async def _chunks(session: AsyncSession) -> dict[tuple[str, int], KnowledgeChunk]:
    rows = (await session.execute(select(KnowledgeChunk).execution_options(populate_existing=True))).scalars()
    return {(chunk.source, chunk.chunk_index): chunk for chunk in rows}


async def test_ingest_a_folder_then_only_changed_chunks_are_reembedded(
    db_session: AsyncSession, recording_embedder: RecordingEmbedder, tmp_path: Path
) -> None:
    folder = tmp_path / "kb"
    (folder / "policies").mkdir(parents=True)
    (folder / "delivery.md").write_text(GUIDE, encoding="utf-8")
    (folder / "policies" / "returns.txt").write_text("Returns within 7 days.\n\nRefunds in 10 days.", encoding="utf-8")
    (folder / "image.png").write_bytes(b"\x89PNG")
    (folder / "policies" / "broken.md").write_bytes(b"\xff\xfe\xfa not utf-8")

    report = await ingest_knowledge_path(db_session, folder, recording_embedder)
    assert (report.files, report.added, report.embedded) == (2, 5, 5)
    assert len(report.rejected) == 1
    assert "policies/broken.md" in str(report.rejected[0])
    stored = await _chunks(db_session)
    assert set(stored) == {("delivery.md", i) for i in range(4)} | {("policies/returns.txt", 0)}
    assert stored[("delivery.md", 3)].language == "ar"
    assert all(chunk.embedding is not None and chunk.embedding_model for chunk in stored.values())

    recording_embedder.reset()
    again = await ingest_knowledge_path(db_session, folder, recording_embedder)
    assert (again.added, again.updated, again.unchanged, again.removed, again.embedded) == (0, 0, 5, 0, 0)

    (folder / "delivery.md").write_text(
        GUIDE.replace("Next business day in Dubai.", "Same day in Dubai before noon.").split("## Other")[0],
        encoding="utf-8",
    )
    changed = await ingest_knowledge_path(db_session, folder / "delivery.md", recording_embedder)
    assert (changed.updated, changed.unchanged, changed.removed, changed.embedded) == (1, 1, 2, 1)
    assert recording_embedder.documents == ["Delivery › Dubai\nSame day in Dubai before noon."]
    stored = await _chunks(db_session)
    assert sorted(key for key in stored if key[0] == "delivery.md") == [("delivery.md", 0), ("delivery.md", 1)]


async def test_demo_knowledge_base_chunks(recording_embedder: RecordingEmbedder, db_session: AsyncSession) -> None:
    report = await ingest_knowledge_path(db_session, DEMO_KNOWLEDGE, recording_embedder)
    sources = {chunk.source for chunk in (await _chunks(db_session)).values()}
    assert sources == {"company.md", "delivery.md", "payment.md", "warranty.md", "returns.md"}
    languages = {chunk.language for chunk in (await _chunks(db_session)).values()}
    assert languages == {"en", "ar", "ru"}
    assert report.added >= 20
    assert not report.rejected
