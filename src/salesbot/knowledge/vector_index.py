"""What the database's vector support looks like: the pgvector version and the dimension of each vector column.

pgvector 0.6 (bundled with pgserver) filters *after* an HNSW index scan; 0.8 (the production images) adds
iterative index scans. Search picks its strategy from the detected version. The embedding columns are
created as `vector(1024)` (BGE-M3) and `salesbot reindex` changes them when the configured model has
another dimension (`set_dimension`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.kit.logging import get_logger

log = get_logger(__name__)

# HNSW indexes `vector` columns of up to 2000 dimensions.
HNSW_MAX_DIM: Final = 2000


@dataclass(frozen=True)
class VectorTable:
    table: str
    index: str
    # HNSW parameters, as the migrations create the index.
    m: int = 16
    ef_construction: int = 64

    @property
    def hnsw_with(self) -> str:
        return f"(m = {int(self.m)}, ef_construction = {int(self.ef_construction)})"


# Products: a denser graph than pgvector's defaults (m 16, ef_construction 64), for recall at 100,000 products.
PRODUCTS: Final = VectorTable("products", "ix_products_embedding_hnsw", m=32, ef_construction=400)
KNOWLEDGE: Final = VectorTable("knowledge_chunks", "ix_knowledge_chunks_embedding_hnsw")
VECTOR_TABLES: Final = (PRODUCTS, KNOWLEDGE)

# A write of at least this many vectors that outnumber those the index keeps drops the HNSW index and builds it
# once afterwards instead of updating it row by row: with the products' dense graph (m 32; measured at
# ef_construction 200) a build is an order of magnitude faster than as many inserts (a first import of 2,000
# products: 12 s instead of 158 s on 2 loaded cores; the 251 demo products: 1.5 s instead of 12 s; the demo
# catalog's reindex: a few seconds instead of 19 s). Searches of that table wait from the drop to the commit,
# which only a first, mostly new or mostly re-embedded table pays for.
REBUILD_MIN_VECTORS = 100

_versions: dict[str, tuple[int, ...]] = {}
# Bumped by `forget_dimensions`: a connection's remembered dimension counts only for the generation it was read in.
_dimension_generation = 0


def rebuild_pays(*, writing: int, keeping: int) -> bool:
    """Whether writing `writing` vectors into a table whose index keeps `keeping` others should drop the index
    and build it after the writes (`drop_vector_index`, then `create_vector_index`)."""
    return writing >= REBUILD_MIN_VECTORS and writing > keeping


def _cache_key(session: AsyncSession) -> str:
    bind = session.get_bind()
    return bind.engine.url.render_as_string(hide_password=True)


def parse_version(value: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", value)[:3])


async def pgvector_version(session: AsyncSession) -> tuple[int, ...]:
    """The installed pgvector extension version, e.g. (0, 6, 2); cached per database URL."""
    key = _cache_key(session)
    version = _versions.get(key)
    if version is None:
        raw = (await session.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))).scalar()
        if raw is None:
            raise RuntimeError("the pgvector extension is not installed in this database (run `salesbot migrate`)")
        version = _versions[key] = parse_version(str(raw))
    return version


def supports_iterative_scan(version: tuple[int, ...]) -> bool:
    return version >= (0, 8)


async def column_dimension(session: AsyncSession, table: VectorTable) -> int | None:
    """The declared dimension of `table.embedding` (None for an unconstrained `vector`)."""
    typmod = (
        await session.execute(
            text(
                "SELECT atttypmod FROM pg_attribute "
                "WHERE attrelid = CAST(:table AS regclass) AND attname = 'embedding' AND NOT attisdropped"
            ),
            {"table": table.table},
        )
    ).scalar_one()
    return int(typmod) if typmod and typmod > 0 else None


async def checked_dimension(session: AsyncSession, table: VectorTable, expected: int) -> int | None:
    """`column_dimension`, where a column found to be `vector(expected)` is remembered on the pooled connection
    (every turn searches; the dimension changes only with `salesbot reindex`). Any other answer is not, so a worker
    waiting for a reindex finds the new column on its next search. A reindex in this process forgets every
    remembered match; one in another process makes the next vector query fail, and the search that catches it
    calls `forget_dimensions`."""
    info = (await session.connection()).info
    key = ("salesbot.vector_dim", table.table)
    if info.get(key) == (_dimension_generation, expected):
        return expected
    current = await column_dimension(session, table)
    if current == expected:
        info[key] = (_dimension_generation, expected)
    return current


def forget_dimensions() -> None:
    """Forget every connection's remembered column dimensions (a column changed, or a vector query failed)."""
    global _dimension_generation
    _dimension_generation += 1


async def set_dimension(session: AsyncSession, table: VectorTable, dim: int) -> bool:
    """Make `table.embedding` a `vector(dim)`: existing vectors are dropped (they belong to another model) and
    the HNSW index is rebuilt. Returns False when the column already had that dimension."""
    if not 1 <= dim <= HNSW_MAX_DIM:
        raise ValueError(f"an HNSW index holds vectors of 1..{HNSW_MAX_DIM} dimensions, not {dim}")
    current = await column_dimension(session, table)
    if current == dim:
        return False
    forget_dimensions()
    # DDL cannot take bind parameters; table/index names are constants above and dim is an int.
    await session.execute(text(f"DROP INDEX IF EXISTS {table.index}"))
    await session.execute(text(f"ALTER TABLE {table.table} ALTER COLUMN embedding TYPE vector({int(dim)}) USING NULL"))
    await session.execute(text(f"UPDATE {table.table} SET embedding_model = NULL"))  # noqa: S608  (constant name)
    await session.execute(
        text(
            f"CREATE INDEX {table.index} ON {table.table} "
            f"USING hnsw (embedding vector_cosine_ops) WITH {table.hnsw_with}"
        )
    )
    log.info("knowledge.vector_dimension_changed", table=table.table, old=current, new=dim)
    return True


async def drop_vector_index(session: AsyncSession, table: VectorTable) -> None:
    await session.execute(text(f"DROP INDEX IF EXISTS {table.index}"))


async def create_vector_index(session: AsyncSession, table: VectorTable) -> None:
    await session.execute(
        text(
            f"CREATE INDEX IF NOT EXISTS {table.index} ON {table.table} "
            f"USING hnsw (embedding vector_cosine_ops) WITH {table.hnsw_with}"
        )
    )
