"""GET /api/v1/conversations: auth, every filter, sorting, pagination edges, the detail view and the CSV export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.api.service import export_conversations_csv
from salesbot.models import Author, Channel, ConversationStatus, DeliveryStatus, Owner, SalesStage
from salesbot.reporting.repository import ConversationFilters, ConversationSort
from salesbot.settings import Settings
from tests.api.conftest import API_TOKEN
from tests.reporting.factories import add_message, make_chat, make_quote

Sessionmaker = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def ids(body: dict[str, object]) -> list[int]:
    return [item["id"] for item in body["items"]]  # type: ignore[attr-defined,index]


def field_errors(response: httpx.Response) -> set[tuple[str, ...]]:
    assert response.status_code == 422, response.text
    return {tuple(str(part) for part in error["loc"]) for error in response.json()["detail"]}


# --- auth -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {API_TOKEN}"},
        {"Authorization": f"Bearer {API_TOKEN}x"},
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "wrong", "wrong-scheme", "longer", "empty"],
)
@pytest.mark.parametrize(
    "path", ["/api/v1/conversations", "/api/v1/conversations/1", "/api/v1/conversations/export.csv", "/api/v1/stats"]
)
async def test_requests_without_the_right_token_get_401(
    anonymous: httpx.AsyncClient, headers: dict[str, str], path: str
) -> None:
    response = await anonymous.get(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "token" in response.json()["detail"]


async def test_write_endpoints_require_the_token_too(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.patch("/api/v1/conversations/1", json={"stage": "qualifying"})).status_code == 401
    assert (await anonymous.post("/api/v1/conversations/1/messages", json={"text": "hi"})).status_code == 401
    assert (await anonymous.post("/api/v1/products", json={})).status_code == 401


# --- filters ----------------------------------------------------------------------------------------------------


async def test_empty_database_gives_an_empty_first_page(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/conversations")
    assert response.status_code == 200
    assert response.json() == {"items": [], "total": 0, "page": 1, "page_size": 50, "pages": 0}


async def test_each_filter_selects_exactly_the_matching_conversations(
    api: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    async with sessionmaker() as session:
        alice = await make_chat(
            session, phone="79001112233", name="Alice", stage=SalesStage.QUOTING, language="ru", updated_at=T0
        )
        bob = await make_chat(
            session,
            phone="whatsapp:+14155550100",
            name="Bob",
            channel=Channel.TWILIO,
            owner=Owner.HUMAN,
            language="en",
            updated_at=T0 + timedelta(days=2),
        )
        carol = await make_chat(
            session,
            phone="971501234567",
            name="Carol",
            status=ConversationStatus.CLOSED,
            stage=SalesStage.CLOSING,
            language="ar",
            updated_at=T0 + timedelta(days=4),
        )
        await session.commit()
    a, b, c = alice.conversation.id, bob.conversation.id, carol.conversation.id

    async def matching(**params: str) -> set[int]:
        response = await api.get("/api/v1/conversations", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == len(body["items"])
        return set(ids(body))

    assert await matching() == {a, b, c}
    assert await matching(status="closed") == {c}
    assert await matching(status="active") == {a, b}
    assert await matching(stage="quoting") == {a}
    assert await matching(stage="greeting") == {b}
    assert await matching(owner="human") == {b}
    assert await matching(owner="bot") == {a, c}
    assert await matching(language="ar") == {c}
    assert await matching(language="RU") == {a}
    # A phone substring matches whatever the provider's address looks like, with or without formatting.
    assert await matching(phone="4155550") == {b}
    assert await matching(phone="+7 (900) 111") == {a}
    assert await matching(phone="50123") == {c}
    assert await matching(phone="000000") == set()
    assert await matching(updated_since=(T0 + timedelta(days=1)).isoformat()) == {b, c}
    assert await matching(updated_until=(T0 + timedelta(days=3)).isoformat()) == {a, b}
    # Both bounds together, a naive timestamp read as UTC.
    naive = T0.replace(tzinfo=None)
    since, until = (naive + timedelta(days=1)).isoformat(), (naive + timedelta(days=3)).isoformat()
    assert await matching(updated_since=since, updated_until=until) == {b}
    assert await matching(status="active", owner="bot", language="ru", phone="7900") == {a}
    # An inverted window matches nothing.
    assert await matching(updated_since=(T0 + timedelta(days=4)).isoformat(), updated_until=T0.isoformat()) == set()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "archived"}, "status"),
        ({"stage": "negotiation"}, "stage"),
        ({"owner": "robot"}, "owner"),
        ({"language": "english!"}, "language"),
        ({"phone": "call me"}, "phone"),
        ({"phone": "+-()"}, "phone"),
        ({"updated_since": "yesterday"}, "updated_since"),
        ({"updated_until": "1700000000"}, "updated_until"),
        ({"sort": "name"}, "sort"),
        ({"page": "0"}, "page"),
        ({"page": "x"}, "page"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "201"}, "page_size"),
    ],
)
async def test_bad_parameters_are_422_naming_the_parameter(
    api: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    assert ("query", field) in field_errors(await api.get("/api/v1/conversations", params=params))


# --- sorting and pagination ---------------------------------------------------------------------------------------


async def test_newest_activity_first_by_default_and_other_sort_keys(
    api: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    async with sessionmaker() as session:
        old = await make_chat(session, last_message_at=T0, llm_cost_total=Decimal("0.30"), message_count=9)
        silent = await make_chat(session, last_message_at=None, message_count=0)
        new = await make_chat(session, last_message_at=T0 + timedelta(hours=5), llm_cost_total=Decimal("0.01"))
        await session.commit()
    o, s, n = old.conversation.id, silent.conversation.id, new.conversation.id

    async def order(sort: str | None = None) -> list[int]:
        params = {"sort": sort} if sort else {}
        response = await api.get("/api/v1/conversations", params=params)
        assert response.status_code == 200
        return ids(response.json())

    assert await order() == [n, o, s]  # chats without messages come last
    assert await order("last_message_at") == [o, n, s]
    assert await order("-llm_cost_total") == [o, n, s]
    assert (await order("-message_count"))[0] == o
    assert await order("id") == [o, s, n]
    assert await order("-id") == [n, s, o]


async def test_pages_cover_every_row_once_and_the_last_page_is_partial(
    api: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    async with sessionmaker() as session:
        for minute in range(7):
            await make_chat(session, last_message_at=T0 + timedelta(minutes=minute))
        await session.commit()

    seen: list[int] = []
    for page in (1, 2, 3):
        response = await api.get("/api/v1/conversations", params={"page": page, "page_size": 3})
        body = response.json()
        assert (body["total"], body["pages"], body["page"], body["page_size"]) == (7, 3, page, 3)
        seen += ids(body)
    assert len(seen) == len(set(seen)) == 7
    last = (await api.get("/api/v1/conversations", params={"page": 3, "page_size": 3})).json()
    assert len(last["items"]) == 1

    beyond = (await api.get("/api/v1/conversations", params={"page": 4, "page_size": 3})).json()
    assert beyond == {"items": [], "total": 7, "page": 4, "page_size": 3, "pages": 3}
    exact = (await api.get("/api/v1/conversations", params={"page": 1, "page_size": 7})).json()
    assert (len(exact["items"]), exact["pages"]) == (7, 1)


async def test_pagination_with_a_filter_counts_only_matches(api: httpx.AsyncClient, sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session:
        for index in range(5):
            await make_chat(session, owner=Owner.HUMAN if index % 2 else Owner.BOT)
        await session.commit()
    body = (await api.get("/api/v1/conversations", params={"owner": "human", "page_size": 1, "page": 2})).json()
    assert (body["total"], body["pages"], len(body["items"])) == (2, 2, 1)
    assert body["items"][0]["owner"] == "human"


# --- detail -------------------------------------------------------------------------------------------------------


async def test_detail_has_the_customer_the_transcript_in_order_and_the_quotes(
    api: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session, phone="79005554433", name="Dana", stage=SalesStage.QUOTING)
        await add_message(session, chat, "Need 2 printers", at=T0)
        await add_message(
            session,
            chat,
            "Here is your quote",
            author=Author.BOT,
            at=T0 + timedelta(seconds=4),
            status=DeliveryStatus.DELIVERED,
            model="offline",
            fallback_used=True,
            tokens_in=120,
            tokens_out=40,
            cost=Decimal("0.0012"),
            latency_ms=850,
            tool_calls=[{"tool": "create_quote", "args": {"items": [{"sku": "SKU-1", "qty": 2}]}, "outcome": "ok"}],
        )
        await add_message(
            session,
            chat,
            "Call you later",
            author=Author.MANAGER,
            at=T0 + timedelta(seconds=9),
            status=DeliveryStatus.FAILED,
            error="window_closed",
        )
        quote = await make_quote(session, chat)
        await session.commit()

    response = await api.get(f"/api/v1/conversations/{chat.conversation.id}")
    assert response.status_code == 200
    body = response.json()
    assert body["customer"]["name"] == "Dana"
    assert body["customer"]["phone"] == "+79005554433"
    assert body["customer"]["phone_masked"] == "+79•••••••33"
    assert body["stage"] == "quoting"
    assert [m["text"] for m in body["messages"]] == ["Need 2 printers", "Here is your quote", "Call you later"]
    assert [m["author"] for m in body["messages"]] == ["customer", "bot", "manager"]
    bot = body["messages"][1]
    assert (bot["model"], bot["fallback_used"], bot["tokens_in"], bot["latency_ms"]) == ("offline", True, 120, 850)
    assert Decimal(bot["cost"]) == Decimal("0.0012")
    assert bot["tool_calls"][0]["tool"] == "create_quote"
    assert body["messages"][2]["delivery_status"] == "failed"
    assert body["messages"][2]["error"] == "window_closed"
    assert [q["id"] for q in body["quotes"]] == [quote.id]
    assert Decimal(body["quotes"][0]["total"]) == Decimal("190.00")


async def test_unknown_conversation_is_404_and_a_malformed_id_is_422(api: httpx.AsyncClient) -> None:
    missing = await api.get("/api/v1/conversations/987654")
    assert missing.status_code == 404
    assert "987654" in missing.json()["detail"]
    assert (await api.get("/api/v1/conversations/abc")).status_code == 404  # not an id: no such resource
    assert ("path", "conversation_id") in field_errors(await api.get("/api/v1/conversations/0"))
    assert ("path", "conversation_id") in field_errors(await api.get(f"/api/v1/conversations/{2**63}"))


# --- export -------------------------------------------------------------------------------------------------------


async def test_export_streams_csv_with_the_filters_applied(api: httpx.AsyncClient, sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session:
        first = await make_chat(session, name='=HYPERLINK("http://evil")', phone="79001230001", last_message_at=T0)
        await make_chat(session, name="Closed one", status=ConversationStatus.CLOSED)
        second = await make_chat(
            session, name='Zoë, "quoted"', phone="79001230002", last_message_at=T0 + timedelta(minutes=1)
        )
        await session.commit()

    async with api.stream("GET", "/api/v1/conversations/export.csv", params={"status": "active"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        text = "".join([chunk async for chunk in response.aiter_text()])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(row["id"]) for row in rows] == [second.conversation.id, first.conversation.id]
    assert rows[0]["customer_name"] == 'Zoë, "quoted"'
    assert rows[0]["phone"] == "+79001230002"
    # A formula-looking name is neutralised for spreadsheet programs.
    assert rows[1]["customer_name"] == '\'=HYPERLINK("http://evil")'
    assert rows[1]["stage"] == "greeting"


async def test_export_of_nothing_is_just_the_header(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/conversations/export.csv", params={"owner": "human"})
    assert response.status_code == 200
    assert response.text.strip().split(",")[:3] == ["id", "customer_name", "phone"]
    assert len(response.text.strip().splitlines()) == 1


async def test_export_streams_in_chunks_through_a_cursor(
    api: httpx.AsyncClient, sessionmaker: Sessionmaker, api_settings: Settings
) -> None:
    async with sessionmaker() as session:
        for _ in range(450):
            await make_chat(session)
        await session.commit()
    # The generator behind the response yields as the cursor advances (the ASGI test transport would buffer it).
    chunks = [
        chunk
        async for chunk in export_conversations_csv(
            sessionmaker, ConversationFilters(), ConversationSort.ID, rows_per_chunk=100
        )
    ]
    assert len(chunks) == 5
    assert sum(chunk.count("\r\n") for chunk in chunks) == 451
    response = await api.get("/api/v1/conversations/export.csv")
    assert len(response.text.splitlines()) == 451


async def test_export_rejects_bad_filters(api: httpx.AsyncClient) -> None:
    assert ("query", "stage") in field_errors(await api.get("/api/v1/conversations/export.csv?stage=x"))
