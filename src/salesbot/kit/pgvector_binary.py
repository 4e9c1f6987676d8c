"""pgvector's `vector` in PostgreSQL's binary format over asyncpg.

pgvector's SQLAlchemy type sends a vector as text: 512 floats printed one by one (about 0.4 ms of the process's
CPU each time, the server then parses them back) and a row's vector read back is parsed from text (about 0.2 ms).
A turn binds several (the customer's question in each search branch, the facts it remembers), which made the
text conversion a few percent of the worker's CPU. In binary a vector is its float32s behind a 4-byte header:
a copy each way.

`install(engine)` registers the binary codec on every connection the engine opens, and `BinaryVector` (the
models' column type) hands its values to that codec instead of printing them. A database without the `vector`
type yet (before the first migration) gets no codec: it has no vector column to bind either. A connection opened
before `CREATE EXTENSION vector` keeps having none, so migrate before a process opens its engine (as `salesbot dev`,
`make run` and the test suite do).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from pgvector import Vector
from pgvector.sqlalchemy import VECTOR
from sqlalchemy import event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry

__all__ = ["BinaryVector", "install", "register"]

_VECTOR_SCHEMA = """
SELECT n.nspname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typname = 'vector'
ORDER BY n.nspname = ANY(current_schemas(false)) DESC LIMIT 1
"""


class BinaryVector(VECTOR):
    """`pgvector.sqlalchemy.VECTOR` whose values go to asyncpg as they are (a list, a numpy array or a
    `pgvector.Vector`) for the codec `install` registers; other drivers get pgvector's text."""

    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.driver == "asyncpg":
            return None
        return super().bind_processor(dialect)


def _encode(value: Any) -> bytes:
    return (value if isinstance(value, Vector) else Vector(value)).to_binary()


async def register(connection: asyncpg.Connection) -> bool:
    """Send and receive `vector` in binary on this connection; False when the database has no such type."""
    schema = await connection.fetchval(_VECTOR_SCHEMA)
    if schema is None:
        return False
    await connection.set_type_codec(
        "vector", schema=schema, encoder=_encode, decoder=Vector.from_binary, format="binary"
    )
    return True


def install(engine: AsyncEngine) -> None:
    """Register the binary codec on each new connection of `engine`."""

    def on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        dbapi_connection.run_async(register)

    event.listen(engine.sync_engine, "connect", on_connect)
