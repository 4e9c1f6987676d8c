"""`salesbot chat`: talk to the running bot from a terminal, as a customer of the console channel.

It is a plain HTTP client of the simulator's endpoints, so it works against `salesbot dev` on this machine or any
server with the console provider on. Typed lines go to `POST /webhooks/console`; a background thread polls
`/simulator/api/replies` and prints the bot's replies and a typing hint. With piped input
(`echo "hi" | salesbot chat`), it waits for the bot to answer the last message before it exits.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from salesbot.kit.phones import normalize_phone

DEFAULT_URL = "http://127.0.0.1:8000"
QUIT_COMMANDS = frozenset({"/quit", "/exit"})


def discover_url(data_dir: Path) -> str:
    """The URL `salesbot dev` recorded in its lock file (`<pid> <url>`), else the default address."""
    try:
        parts = (data_dir / "dev.pid").read_text().split()
    except OSError:
        return DEFAULT_URL
    return parts[1] if len(parts) > 1 and parts[1].startswith("http") else DEFAULT_URL


def default_phone(data_dir: Path) -> str:
    """A stable test number per data directory (so a new session continues the same chat), else a random one."""
    path = data_dir / "chat-phone"
    try:
        return normalize_phone(path.read_text().strip())
    except (OSError, ValueError):
        pass
    phone = "+1555" + "".join(secrets.choice("0123456789") for _ in range(7))
    if data_dir.is_dir():
        path.write_text(phone + "\n")
    return phone


class ChatError(Exception):
    """The bot cannot be reached or refused the chat (message for the user)."""


@dataclass
class TerminalChat:
    base_url: str
    phone: str
    name: str | None
    out: TextIO
    poll_interval: float = 0.5
    settle_timeout: float = 60.0
    _cursor: str | None = None
    _seen: set[str] = field(default_factory=set)
    _typing: bool = False
    _replies_since_send: int = 0
    _polled_since_send: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _print(self, line: str) -> None:
        with self._lock:
            self.out.write(line + "\n")
            self.out.flush()

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(10.0, connect=3.0))

    def _get(self, client: httpx.Client, path: str, params: dict[str, str]) -> Any:
        try:
            response = client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise ChatError(f"cannot reach {self.base_url} ({type(exc).__name__}): is `salesbot dev` running?") from exc
        if response.status_code == 404:
            raise ChatError(f"{self.base_url} has no simulator: the console provider is off there (CONSOLE_ENABLED)")
        if response.status_code != 200:
            raise ChatError(f"{path} answered {response.status_code}: {response.text[:200]}")
        return response.json()

    def start(self) -> None:
        with self._client() as client:
            history = self._get(client, "/simulator/api/history", {"phone": self.phone})
        self.phone = history["phone"]
        self._cursor = history["cursor"]
        for message in history["messages"]:
            if message.get("provider_message_id"):
                self._seen.add(message["provider_message_id"])
        self._print(f"Chatting as {self.phone} with {self.base_url} (type /quit to leave).")
        for message in history["messages"][-10:]:
            if message["delivery_status"] != "cancelled":
                who = "you" if message["direction"] == "inbound" else message["author"]
                self._print(f"{who} › {message['text']}")
        threading.Thread(target=self._poll_loop, name="salesbot-chat-poll", daemon=True).start()

    def _poll_loop(self) -> None:
        with self._client() as client:
            while not self._stop.is_set():
                try:
                    self.poll_once(client)
                except ChatError as exc:
                    self._print(f"! {exc}")
                self._stop.wait(self.poll_interval)

    def poll_once(self, client: httpx.Client) -> None:
        params = {"phone": self.phone} | ({"after": self._cursor} if self._cursor else {})
        body = self._get(client, "/simulator/api/replies", params)
        for reply in body["replies"]:
            self._cursor = reply["cursor"]
            if reply["message_id"] in self._seen:
                continue
            self._seen.add(reply["message_id"])
            self._replies_since_send += 1
            self._print(f"bot › {reply['text']}")
        typing = bool(body["typing"])
        if typing and not self._typing:
            self._print("… typing")
        self._typing = typing
        self._polled_since_send = True

    def send(self, text: str) -> bool:
        payload = {"phone": self.phone, "text": text, "id": f"cli-{uuid.uuid4().hex}"}
        if self.name:
            payload["name"] = self.name
        try:
            with self._client() as client:
                response = client.post("/webhooks/console", json=payload)
        except httpx.HTTPError as exc:
            self._print(f"! not sent: cannot reach {self.base_url} ({type(exc).__name__})")
            return False
        if response.status_code != 200:
            self._print(f"! not sent ({response.status_code}): {response.text[:200]}")
            return False
        self._replies_since_send = 0
        self._polled_since_send = False
        self._typing = True
        return True

    def settle(self) -> bool:
        """Wait until the last message was answered (or the bot went quiet: a manager owns the chat)."""
        deadline = time.monotonic() + self.settle_timeout
        while time.monotonic() < deadline:
            if self._polled_since_send and not self._typing:
                return True
            time.sleep(self.poll_interval / 2)
        self._print("! no answer in time")
        return False

    def stop(self) -> None:
        self._stop.set()


def run_chat(base_url: str, phone: str, *, name: str | None, stdin: TextIO, out: TextIO, **options: Any) -> int:
    """The `salesbot chat` loop; returns the exit code."""
    chat = TerminalChat(base_url.rstrip("/"), normalize_phone(phone), name, out, **options)
    try:
        chat.start()
    except ChatError as exc:
        out.write(f"salesbot chat: {exc}\n")
        return 2
    sent_any = False
    try:
        for raw in stdin:
            text = raw.strip()
            if not text:
                continue
            if text in QUIT_COMMANDS:
                return 0
            sent_any = chat.send(text) or sent_any
        # End of input (piped text): show the answer to what was sent before leaving.
        if sent_any:
            chat.settle()
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        chat.stop()
