"""Telling "the database cannot be reached" apart from every other database error.

Callers that have a fallback for an outage (the inbox spools events to Redis) must take it only when PostgreSQL
is unreachable, never for a bug or bad data: a constraint violation, a syntax error or a NUL byte in a text would
be retried for ever from the fallback and hide a defect that should surface as an error.

Unreachable means: the connection could not be opened or broke (OSError, including timeouts and a missing unix
socket), SQLAlchemy invalidated the connection as a disconnect, or the server answered with a connection-level
SQLSTATE (class 08; 57P01-57P03 shutdown or start-up in progress; 53300 no free connection slot).
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

# SQLSTATE class 08 is "connection exception"; the others are the server going down, starting up or full.
_CONNECTION_CLASS = "08"
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})
# Wrappers nest a few levels (SQLAlchemy error -> DBAPI adapter error -> asyncpg error -> OSError).
_MAX_DEPTH = 8


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what it explicitly wraps (`raise ... from`, a DBAPI error's `orig`), outermost first.

    `__context__` (an error raised while another was being handled) is not followed: a bug in a cleanup path
    must not pass for an outage because the error it interrupted was one.
    """
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < _MAX_DEPTH and current not in chain:
        chain.append(current)
        orig = current.orig if isinstance(current, DBAPIError) else None
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return chain


def _unreachable(exc: BaseException) -> bool:
    if isinstance(exc, OSError):  # also TimeoutError, ConnectionRefusedError, FileNotFoundError of a unix socket
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    state = getattr(exc, "sqlstate", None)
    return isinstance(state, str) and (state.startswith(_CONNECTION_CLASS) or state in _UNAVAILABLE_STATES)


def database_unreachable(exc: BaseException) -> bool:
    """True when `exc` (or an error it wraps) means PostgreSQL could not be reached, not that a statement failed."""
    return any(_unreachable(error) for error in _causes(exc))
