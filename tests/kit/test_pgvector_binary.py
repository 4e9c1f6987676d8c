"""Vectors in PostgreSQL's binary format on the engines salesbot creates. Real PostgreSQL with pgvector."""

from __future__ import annotations

import numpy as np
import pytest
from pgvector import Vector
from sqlalchemy import bindparam, cast, func, select, text

from salesbot.db import create_engine
from salesbot.devstack import EmbeddedPostgres
from salesbot.kit.pgvector_binary import BinaryVector, register

# float32 values that print long in decimal: a round trip through text would have to print and parse them all.
VALUES = np.array([0.1, -1 / 3, 2.5e-8, 12345.678], dtype=np.float32)


async def test_the_driver_sends_and_reads_vectors_in_binary(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            # asyncpg's text fallback for an unknown type takes only a str and returns the text: a numpy array in
            # and a pgvector.Vector out happen only through the binary codec.
            value = await driver.fetchval("SELECT $1::vector", VALUES)
    finally:
        await engine.dispose()
    assert isinstance(value, Vector)
    assert value.to_numpy().tobytes() == VALUES.tobytes()


async def test_a_column_of_binary_vectors_binds_and_returns_the_floats_unchanged(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    vector = bindparam("vector", type_=BinaryVector(len(VALUES)))
    query = select(
        cast(vector, BinaryVector(len(VALUES))).label("same"),
        func.vector_dims(vector).label("dims"),
        (cast(vector, BinaryVector(len(VALUES))).cosine_distance(list(VALUES))).label("distance"),
    )
    try:
        async with engine.connect() as connection:
            for given in (VALUES, list(VALUES), VALUES.tolist(), Vector(VALUES)):
                row = (await connection.execute(query, {"vector": given})).one()
                assert np.array(row.same, dtype=np.float32).tobytes() == VALUES.tobytes()
                assert row.dims == len(VALUES)
                assert row.distance == pytest.approx(0.0, abs=1e-6)
    finally:
        await engine.dispose()


async def test_a_database_without_pgvector_still_connects(postgres: EmbeddedPostgres) -> None:
    postgres.create_database("salesbot_without_pgvector")
    engine = create_engine(postgres.url("salesbot_without_pgvector"), pool_size=1)
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT count(*) FROM pg_type WHERE typname = 'vector'")) == 0
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            assert await register(driver) is False
            assert await connection.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()
