"""`salesbot chat` as a user runs it: the installed command, piped input, the live product."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from salesbot.simulator.terminal import default_phone, discover_url
from tests.live import LiveStack

SALESBOT = str(Path(sys.executable).with_name("salesbot"))


def chat(args: list[str], stdin: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SALESBOT_ENV_FILE": "", "SALESBOT_DATA_DIR": str(tmp_path)}
    return subprocess.run(
        [SALESBOT, "chat", *args], input=stdin, capture_output=True, text=True, timeout=90, env=env, check=False
    )


def test_piped_messages_get_the_bots_answer(live: LiveStack, tmp_path: Path) -> None:
    result = chat(
        ["--url", live.url, "--phone", "+1 555 010 0777", "--name", "Terminal Tester"],
        "Hello!\nDo you sell printers?\n",
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Chatting as +15550100777 with {live.url} (type /quit to leave)."
    replies = [line for line in lines if line.startswith("bot › ")]
    assert len(replies) == 1, result.stdout  # two messages in one burst, one answer
    assert len(replies[0]) > len("bot › ")

    # A second session shows the conversation so far and continues it.
    again = chat(["--url", live.url, "--phone", "+15550100777"], "/quit\n", tmp_path)
    assert again.returncode == 0
    assert "you › Hello!" in again.stdout
    assert replies[0] in again.stdout


def test_clear_errors_when_the_bot_is_not_there(tmp_path: Path) -> None:
    unreachable = chat(["--url", "http://127.0.0.1:9", "--phone", "+15550100"], "hi\n", tmp_path)
    assert unreachable.returncode == 2
    assert "cannot reach http://127.0.0.1:9" in unreachable.stdout
    bad_phone = chat(["--url", "http://127.0.0.1:9", "--phone", "call me"], "hi\n", tmp_path)
    assert bad_phone.returncode == 2
    assert "phone must be" in bad_phone.stderr


def test_defaults_come_from_the_data_dir(tmp_path: Path) -> None:
    assert discover_url(tmp_path) == "http://127.0.0.1:8000"
    (tmp_path / "dev.pid").write_text("4242 http://127.0.0.1:8123\n")
    assert discover_url(tmp_path) == "http://127.0.0.1:8123"
    phone = default_phone(tmp_path)
    assert phone.startswith("+1555")
    assert len(phone) == 12
    assert default_phone(tmp_path) == phone  # kept for the next session
    # Without a data directory the number is random and nothing is written.
    assert default_phone(tmp_path / "missing").startswith("+1555")
    assert not (tmp_path / "missing").exists()
