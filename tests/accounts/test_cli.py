"""`salesbot users ...` against the real database: passwords only from standard input, tokens printed once."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator

import pytest

from salesbot.accounts import service
from salesbot.cli import build_parser, main
from salesbot.db import create_engine, create_sessionmaker
from salesbot.models import User
from salesbot.settings import Settings, get_settings

PASSWORD = "typed into stdin, never argv"


@pytest.fixture
def cli(settings: Settings, clean_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def run(monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(list(argv))


def check(settings: Settings, username: str, password: str) -> User | None:
    async def go() -> User | None:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            async with create_sessionmaker(engine)() as session:
                return await service.authenticate(session, username, password)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_add_list_set_password_disable(
    cli: None, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        monkeypatch,
        *("users", "add", "ivan", "--name", "Ivan P", "--email", "ivan@example.com", "--role", "admin"),
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 0
    user = check(settings, "ivan", PASSWORD)
    assert user is not None
    assert (user.name, user.email, user.role.value) == ("Ivan P", "ivan@example.com", "admin")

    capsys.readouterr()
    assert run(monkeypatch, "users", "list") == 0
    listing = capsys.readouterr().out
    assert "ivan" in listing
    assert "admin" in listing
    assert PASSWORD not in listing

    assert run(monkeypatch, "users", "set-password", "ivan", "--password-stdin", stdin="a second long password\n") == 0
    assert check(settings, "ivan", PASSWORD) is None
    assert check(settings, "ivan", "a second long password") is not None

    assert run(monkeypatch, "users", "disable", "ivan") == 0
    assert check(settings, "ivan", "a second long password") is None
    # Unknown users and refused passwords are errors (exit 1), not tracebacks.
    assert run(monkeypatch, "users", "disable", "nobody") == 1
    assert run(monkeypatch, "users", "add", "judy", "--password-stdin", stdin="short\n") == 1
    assert "at least 12 characters" in capsys.readouterr().err


def test_token_prints_a_new_token_once(
    cli: None, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(monkeypatch, "users", "add", "kim", "--password-stdin", stdin=PASSWORD) == 0
    capsys.readouterr()
    assert run(monkeypatch, "users", "token", "kim") == 0
    first = capsys.readouterr().out.strip()
    assert run(monkeypatch, "users", "token", "kim") == 0
    second = capsys.readouterr().out.strip()
    assert first.startswith(service.TOKEN_PREFIX)
    assert first != second


@pytest.mark.parametrize("action", ["add", "set-password"])
def test_there_is_no_password_argument(action: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["users", action, "someone", "--password", "secret value"])
    # And the stdin flag is required, so a forgotten flag never reads an empty password.
    with pytest.raises(SystemExit):
        build_parser().parse_args(["users", action, "someone"])
