"""`salesbot check`: every item a deployment needs, each with ok/error and a hint, checked for real.

Services are queried, the playbook is loaded, each LLM gets a one-token request, the embedder embeds a probe and
each configured provider answers a harmless API call. `/readyz` shows the LLM and provider items too (cached),
without letting them gate readiness: a load balancer that stopped sending webhooks because the LLM is down would
lose customer messages that the offline responder could still answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from pydantic_ai.direct import model_request
from pydantic_ai.messages import ModelRequest
from pydantic_ai.settings import ModelSettings

from salesbot.agent.models import chat_model, llm_names
from salesbot.alerts.delivery import senders_for
from salesbot.health.service import check_readiness, describe_playbook
from salesbot.knowledge.embeddings import get_embedder
from salesbot.messaging.base import ProviderError
from salesbot.messaging.meta import probe_phone_number
from salesbot.messaging.twilio import TwilioProvider
from salesbot.messaging.wazzup import WazzupProvider
from salesbot.resources import Resources
from salesbot.settings import Environment, Settings

PROBE_TIMEOUT_SECONDS = 15.0
ADVISORY_CACHE_SECONDS = 300.0
READINESS_HINTS = {
    "database": "set DATABASE_URL to a reachable PostgreSQL 16+ (or run `salesbot dev`)",
    "pgvector": "run `salesbot migrate` (it creates the vector extension)",
    "redis": "set REDIS_URL to a reachable Redis",
    "worker": "start `salesbot worker` (it writes a heartbeat every few seconds)",
    "playbook": "fix the YAML at PLAYBOOK_PATH (the error names the field)",
}


@dataclass(frozen=True)
class Item:
    name: str
    ok: bool
    detail: str
    hint: str = ""
    # Whether a production start needs it (the exit status of `salesbot check` counts only these).
    required: bool = True


async def _probe(name: str, check: Awaitable[str], *, hint: str, required: bool = True) -> Item:
    try:
        detail = await asyncio.wait_for(check, PROBE_TIMEOUT_SECONDS)
    except TimeoutError:
        return Item(name, False, f"no answer within {PROBE_TIMEOUT_SECONDS:.0f} s", hint, required)
    except ProviderError as exc:
        return Item(name, False, f"{exc.code}: {exc.description}"[:300], hint, required)
    except Exception as exc:  # every failure of a dependency is an answer for the operator, not a crash
        return Item(name, False, f"{type(exc).__name__}: {exc}"[:300], hint, required)
    return Item(name, True, detail, "", required)


def mode_item(settings: Settings) -> Item:
    if settings.salesbot_env is None:
        return Item("mode", True, "development (SALESBOT_ENV unset)", "set SALESBOT_ENV=production for real customers")
    return Item("mode", True, settings.env.value)


def playbook_item_hint(settings: Settings) -> str:
    if settings.conversation.playbook_path:
        return READINESS_HINTS["playbook"]
    return "set PLAYBOOK_PATH to your business's playbook (the shipped one describes a demo business)"


async def _ask(name: str, settings: Settings) -> str:
    started = time.perf_counter()
    response = await model_request(
        chat_model(name, settings.llm),
        [ModelRequest.user_text_prompt("Reply with the single word OK.")],
        model_settings=ModelSettings(max_tokens=5),
    )
    return f"answered in {(time.perf_counter() - started) * 1000:.0f} ms (model {response.model_name or name})"


async def llm_items(settings: Settings) -> list[Item]:
    names = llm_names(settings.llm)
    if not names:
        return [
            Item(
                "llm",
                True,
                "offline responder (LLM_MODEL=offline)",
                "set LLM_MODEL, LLM_BASE_URL and LLM_API_KEY for an OpenAI-compatible LLM",
                required=False,
            )
        ]
    hint = "check LLM_BASE_URL, LLM_API_KEY and the model name (LLM_MODEL / LLM_FALLBACK_MODELS)"
    return list(await asyncio.gather(*(_probe(f"llm {name}", _ask(name, settings), hint=hint) for name in names)))


async def _embedder(settings: Settings) -> str:
    embedder = get_embedder(settings)
    vector = await embedder.embed_query("salesbot configuration check")
    return f"{embedder.name}, {len(vector)} dimensions"


async def provider_items(settings: Settings, http: httpx.AsyncClient) -> list[Item]:
    checks: list[tuple[str, Callable[[], Awaitable[str]], str]] = []
    if settings.wazzup.enabled:
        wazzup = WazzupProvider(settings.wazzup, http)
        checks.append(("wazzup", wazzup.check_credentials, "check WAZZUP_API_KEY and WAZZUP_CHANNEL_ID"))
    if settings.twilio.enabled:
        twilio = TwilioProvider(settings.twilio, http, public_base_url=settings.public_base_url)
        checks.append(("twilio", twilio.check_credentials, "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"))
    if settings.meta.enabled:
        checks.append(
            (
                "meta",
                lambda: probe_phone_number(settings.meta, http),
                "check META_ACCESS_TOKEN (a System User token with whatsapp_business_messaging) and "
                "META_PHONE_NUMBER_ID",
            )
        )
    if not checks:
        hint = (
            "configure WAZZUP_*, TWILIO_* or META_* to reach WhatsApp (the console provider serves the simulator only)"
        )
        return [Item("providers", True, "none configured", hint, required=False)]
    return list(await asyncio.gather(*(_probe(name, check(), hint=hint) for name, check, hint in checks)))


def webhook_urls(settings: Settings) -> dict[str, str]:
    """What to register at each configured provider (the Wazzup secret masked: `webhooks register` sets it)."""
    base = settings.public_base_url.rstrip("/")
    urls: dict[str, str] = {}
    if settings.wazzup.enabled:
        urls["wazzup"] = f"{base}/webhooks/wazzup/<WAZZUP_WEBHOOK_SECRET>"
    if settings.twilio.enabled:
        urls["twilio"] = f"{base}/webhooks/twilio (status callback: {base}/webhooks/twilio/status)"
    if settings.meta.enabled:
        urls["meta"] = f"{base}/webhooks/meta"
    return urls


def wazzup_webhook_url(settings: Settings) -> str:
    return f"{settings.public_base_url.rstrip('/')}/webhooks/wazzup/{settings.wazzup.webhook_secret.get_secret_value()}"


async def webhook_items(settings: Settings, http: httpx.AsyncClient) -> list[Item]:
    base = settings.public_base_url
    secure = base.startswith("https://")
    items = [
        Item(
            "public url",
            secure or settings.env is not Environment.PRODUCTION,
            base,
            "" if secure else "PUBLIC_BASE_URL must be the public https:// address providers call",
            required=settings.env is Environment.PRODUCTION,
        )
    ]
    if settings.wazzup.enabled:
        expected = wazzup_webhook_url(settings)

        async def registered() -> str:
            current = await WazzupProvider(settings.wazzup, http).registered_webhook()
            if current != expected:
                shown = "nothing" if current is None else "another address"
                raise RuntimeError(f"Wazzup's webhook points to {shown}, not {webhook_urls(settings)['wazzup']}")
            return "Wazzup's webhook points here"

        items.append(await _probe("wazzup webhook", registered(), hint="run `salesbot webhooks register`"))
    if settings.twilio.enabled:
        items.append(
            Item(
                "twilio webhook",
                True,
                webhook_urls(settings)["twilio"],
                "set it on the WhatsApp sender in the Twilio console (Twilio has no API check for it)",
                required=False,
            )
        )
    if settings.meta.enabled:
        items.append(
            Item(
                "meta webhook",
                True,
                webhook_urls(settings)["meta"],
                "set it as the callback URL of the app's WhatsApp product with META_VERIFY_TOKEN, fields messages and "
                "smb_message_echoes",
                required=False,
            )
        )
    return items


async def check_configuration(
    settings: Settings, resources: Resources | None, *, services_error: str = ""
) -> list[Item]:
    """Every item, in the order an operator fixes them; `resources` is None when no database/Redis URL is known."""
    items = [mode_item(settings)]
    if resources is None:
        items.append(
            Item("services", False, services_error or "no DATABASE_URL/REDIS_URL", READINESS_HINTS["database"])
        )
    else:
        for name, result in (await check_readiness(resources)).items():
            hint = playbook_item_hint(settings) if name == "playbook" else READINESS_HINTS.get(name, "")
            items.append(Item(name, result.ok, result.detail, "" if result.ok else hint, required=name != "worker"))
    if resources is None:
        items.append(
            await _probe("playbook", asyncio.to_thread(describe_playbook, settings), hint=playbook_item_hint(settings))
        )
    items += await llm_items(settings)
    items.append(await _probe("embedder", _embedder(settings), hint="check EMBEDDING_MODEL / EMBEDDING_MODEL_PATH"))
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_SECONDS) as http:
        items += await provider_items(settings, http)
        items += await webhook_items(settings, http)
        items += await alert_items(settings, http)
    return items


ALERT_HINTS = {
    "telegram": "check TELEGRAM_BOT_TOKEN (from @BotFather) and TELEGRAM_API_URL",
    "email": "check SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_PASSWORD and SMTP_STARTTLS",
    "webhook": "set ALERT_WEBHOOK_SECRET (receivers verify X-Salesbot-Signature with it)",
}


async def alert_items(settings: Settings, http: httpx.AsyncClient) -> list[Item]:
    """The team's alert channels (optional: without any, alerts are only shown in the admin)."""
    senders = senders_for(settings.alerts, http)
    if not senders:
        hint = "set TELEGRAM_*, SMTP_* or ALERT_WEBHOOK_URL to alert the team about handoffs and failed deliveries"
        return [Item("alerts", True, "no channel configured (alerts are shown in the admin only)", hint, False)]
    return list(
        await asyncio.gather(
            *(
                _probe(f"alerts.{s.channel.value}", s.check(), hint=ALERT_HINTS[s.channel.value], required=False)
                for s in senders
            )
        )
    )


def failed(items: list[Item]) -> list[Item]:
    return [item for item in items if item.required and not item.ok]


def render(items: list[Item]) -> str:
    width = max(len(item.name) for item in items)
    lines = []
    for item in items:
        mark = "ok   " if item.ok else ("ERROR" if item.required else "warn ")
        lines.append(f"  {mark}  {item.name:<{width}}  {item.detail}")
        if item.hint and (not item.ok or item.name in ("mode", "llm", "providers")):
            lines.append(f"         {'':<{width}}  hint: {item.hint}")
    return "\n".join(lines)


# Per settings object (one per process in production): when it was checked and what was found.
_advisory: dict[int, tuple[Settings, float, list[Item]]] = {}


async def advisory_items(resources: Resources) -> list[Item]:
    """LLM and provider items for `/readyz`, re-checked at most every ADVISORY_CACHE_SECONDS per process."""
    settings = resources.settings
    cached = _advisory.get(id(settings))
    if cached is not None and cached[0] is settings and time.monotonic() - cached[1] < ADVISORY_CACHE_SECONDS:
        return cached[2]
    items = await llm_items(settings) + await provider_items(settings, resources.http)
    _advisory[id(settings)] = (settings, time.monotonic(), items)
    return items
