"""The offline responder: a deterministic sales assistant built as a pydantic-ai `FunctionModel`.

It is the model when no LLM is configured and the last link of every fallback chain. It works like an LLM
would, through the same agent: it reads the turn (the customer's masked text and the turn context that the
service attaches as metadata), detects intents with keyword/regex rules in English, Arabic and Russian
(greeting, product question, price, stock, quote request, company details, financing, delivery/payment
questions, objections, human request, acceptance, thanks/bye), calls the same tools in rounds (tools that
unlock with a stage change are called in the next round), and composes the answer only from tool results,
so every price and stock figure it states is grounded by construction.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, NotRequired, TypedDict

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextContent,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from salesbot.agent.history import TURN_KEY
from salesbot.agent.stages import path_to
from salesbot.models import SalesStage

OFFLINE_MODEL_NAME = "offline"
MAX_SKU_LOOKUPS = 3
DEFAULT_FINANCING_MONTHS = 12


class TurnItem(TypedDict):
    sku: str
    qty: int


class TurnContext(TypedDict):
    """What the service tells the offline responder about the turn (metadata; never sent to an LLM)."""

    language: str
    stage: str
    company: str
    assistant: str
    currency: str
    customer_name: str | None
    customer_company: str | None
    customer_email: bool
    selected: list[TurnItem]
    shown_skus: list[str]
    discount_cap: str
    handoff_text: str
    has_quote: bool
    # The product a returning customer asked about last time (memory), if still sold.
    returning_product: NotRequired[str | None]


# --- intent rules --------------------------------------------------------------------------------------------

_FLAGS = re.IGNORECASE | re.UNICODE
INTENTS: dict[str, re.Pattern[str]] = {
    "human": re.compile(
        r"\b(?:human|real person|a person|manager|operator|supervisor|someone real)\b"
        r"|(?:talk|speak) (?:to|with) (?:a |an |your )?(?:human|person|manager|someone|agent)"
        r"|менеджер|оператор|живой человек|живым человеком|с человеком|соедините"
        r"|موظف|مدير|شخص حقيقي|إنسان|انسان|خدمة العملاء",
        _FLAGS,
    ),
    "greeting": re.compile(
        r"^\W*(?:hi|hello|hey|good (?:morning|afternoon|evening)|greetings)\b"
        r"|привет|здравствуй|добр(?:ый|ое|ого) (?:день|утро|вечер)|доброго времени"
        r"|مرحب|السلام عليكم|أهلا|اهلا|صباح الخير|مساء الخير",
        _FLAGS,
    ),
    "thanks": re.compile(
        r"\b(?:thanks|thank you|thx|bye|goodbye|see you)\b|спасибо|благодарю|до свидания|всего доброго|пока\b"
        r"|شكرا|شكرًا|مع السلامة|إلى اللقاء|الى اللقاء",
        _FLAGS,
    ),
    "accept": re.compile(
        r"\b(?:confirm|confirmed|accept|agreed|deal|let'?s do it|go ahead|place the order|proceed)\b"
        r"|подтверждаю|согласен|согласна|оформляйте|давайте оформим|принимаю"
        r"|أوافق|موافق|أؤكد|اؤكد|تم الاتفاق",
        _FLAGS,
    ),
    "quote": re.compile(
        r"\b(?:quote|quotation|proforma|invoice|offer|i'?ll take|i will take|we'?ll take|buy|order|purchase)\b"
        r"|коммерческ|\bкп\b|сч[её]т|заказ|купить|куплю|беру|возьм[уё]|оформ"
        r"|عرض سعر|عرض أسعار|فاتورة|أطلب|اطلب|شراء|أشتري|اشتري|سآخذ|سأشتري",
        _FLAGS,
    ),
    "price": re.compile(
        r"\b(?:price|prices|cost|costs|how much|pricing)\b|цен[аыу]|стоим|сколько стоит|почём|почем"
        r"|سعر|أسعار|اسعار|بكم|كم سعر|كم ثمن|تكلفة",
        _FLAGS,
    ),
    "stock": re.compile(
        r"\b(?:in stock|stock|available|availability)\b|в наличии|наличи|остат|есть ли"
        r"|متوفر|متاح|المخزون",
        _FLAGS,
    ),
    "financing": re.compile(
        r"\b(?:financ\w*|instal+ments?|monthly|credit|leasing|pay later)\b|рассрочк|кредит|лизинг|ежемесячн"
        r"|تقسيط|تمويل|أقساط|اقساط|شهري",
        _FLAGS,
    ),
    "knowledge": re.compile(
        r"\b(?:deliver\w*|shipping|ship|warranty|guarantee|returns?|refund|payment|pay|assembly|opening hours)\b"
        r"|доставк|гаранти|возврат|оплат|сборк"
        r"|توصيل|شحن|ضمان|استرجاع|إرجاع|دفع|الدفع|تركيب",
        _FLAGS,
    ),
    "objection": re.compile(
        r"\b(?:too expensive|expensive|cheaper|discount|lower price|better price|too much)\b"
        r"|дорого|дешевле|скидк|подешевле"
        r"|غالي|غالية|أرخص|ارخص|خصم|تخفيض",
        _FLAGS,
    ),
    "product": re.compile(
        r"\b(?:looking for|need|want|search|show me|do you have|have you got|recommend|laptops?|notebooks?"
        r"|desktops?|computers?|pcs?|monitors?|screens?|printers?|copiers?|scanners?|toners?|ink|cartridges?"
        r"|routers?|switch(?:es)?|access points?|wi-?fi|ups|projectors?|headsets?|webcams?|keyboards?|mouse|mice"
        r"|tablets?|cameras?|cctv|nas|ssd|hard drives?|phones?|chairs?|desks?|tables?|cabinets?|furniture)\b"
        r"|ищу|нужен|нужна|нужно|нужны|хочу|покажите|есть у вас|подберите|ноутбук|компьютер|монитор|принтер"
        r"|мфу|сканер|картридж|тонер|роутер|коммутатор|точк\w* доступа|ибп|проектор|гарнитур|клавиатур|мыш"
        r"|планшет|камер|кресл|стул|стол|шкаф|мебел"
        r"|أبحث|ابحث|أريد|اريد|أحتاج|احتاج|هل لديكم|عندكم|لابتوب|حاسوب|كمبيوتر|شاشة|طابعة|ماسح|حبر|راوتر"
        r"|سويتش|بروجكتور|سماعة|لوحة مفاتيح|ماوس|تابلت|كاميرا|كرسي|كراسي|مكتب|طاولة|خزانة|أثاث",
        _FLAGS,
    ),
}

_SKU = re.compile(r"(?<![\w\[])(?=[A-Za-z0-9-]*\d)(?=[A-Za-z0-9-]*[A-Za-z])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+(?![\w\]])")
_PLAIN_SKU = re.compile(r"(?<![\w\[-])[A-Za-z]{1,4}\d{2,6}[A-Za-z]?(?![\w\]])")
_NOT_SKUS = re.compile(r"^(?:\d+(?:pcs|pc|x|am|pm|k|kg|cm|mm|m|gb|tb)|[a-z]\d|mp\d|covid-?19)$", re.IGNORECASE)
_QTY_UNITS = r"(?:x|×|pcs|pieces|units?|chairs?|desks?|items?|шт\.?|штук[аи]?|единиц[аы]?|قطعة|قطع|حبة|وحدة|وحدات)"
_QTY = re.compile(rf"(?<![\w.,])(\d{{1,5}})\s?{_QTY_UNITS}(?!\w)", _FLAGS)
_MAX_PRICE = re.compile(
    r"(?:under|below|up to|max(?:imum)?|less than|within|до|не дороже|дешевле|أقل من|اقل من|حتى|بحدود)\s?"
    r"(?:[$€£]|usd|aed)?\s?(\d[\d ,.]*\d|\d)",
    _FLAGS,
)
_MONTHS = re.compile(r"(\d{1,3})\s?(?:months?|мес\w*|شهر|شهور|أشهر|اشهر)", _FLAGS)
_EMAIL_PLACEHOLDER = re.compile(r"\[EMAIL_\d+\]")
_PLACEHOLDER = re.compile(r"\[(?:PHONE|EMAIL|CARD)_\d+\]")

_NAME_PATTERNS = [
    re.compile(r"\b(?i:my name is|i am|i'm|this is)\s+([A-Z][\w'’-]+(?:\s+[A-Z][\w'’-]+)?)"),
    re.compile(r"(?i:меня зовут|моё имя|мое имя)\s+([А-ЯЁA-Z][\w-]+(?:\s+[А-ЯЁA-Z][\w-]+)?)"),
    re.compile(r"(?:اسمي|انا اسمي|أنا اسمي)\s+([^\s،,.]+(?:\s+[^\s،,.]+)?)"),
]
_NOT_NAMES = frozenset({"looking", "interested", "searching", "from", "here", "back", "ready", "the", "a"})
_COMPANY_PATTERNS = [
    re.compile(
        r"\b(?:company|company name|my company|we are|work (?:for|at))\s*(?:is|:)?\s+"
        r"([\w&.'’-]+(?:\s+[\w&.'’-]+){0,3}?)(?=\s*(?:[,.;!?]|\band\b|\bmy\b|\bemail\b|\be-mail\b|$))",
        _FLAGS,
    ),
    re.compile(
        r"(?:компания|компании|из компании|организация)\s*:?\s*"
        r"([«\"']?[\w&.-]+(?:\s+[\w&.»\"'-]+){0,3}?)(?=\s*(?:[,.;!?]|\sи\s|$))",
        _FLAGS,
    ),
    re.compile(r"((?:ООО|ОАО|ЗАО|АО|ИП)\s+[«\"']?[\w&.-]+(?:\s+[\w&.»\"'-]+){0,2})", re.UNICODE),
    re.compile(r"(?:شركة|من شركة|الشركة)\s*:?\s*(\S+(?:\s+\S+){0,2}?)(?=\s*(?:[،,.;!?]|\sو|$))"),
]
_FROM_COMPANY = re.compile(r"\b(?:from|at)\s+([A-Z][\w&.'’-]*(?:\s+[A-Z][\w&.'’-]*){0,3})")


def _ascii_digits(text: str) -> str:
    return "".join(str(unicodedata.decimal(char)) if char.isdecimal() and not char.isascii() else char for char in text)


@dataclass
class Details:
    name: str | None = None
    company: str | None = None
    email: str | None = None

    def any(self) -> bool:
        return bool(self.name or self.company or self.email)


@dataclass
class Turn:
    text: str
    context: TurnContext
    intents: set[str]
    skus: list[str]
    items: list[TurnItem]
    details: Details
    max_price: str | None
    months: int
    # The customer said how many units: picking a product with a quantity is choosing it.
    explicit_qty: bool = False


def detect_intents(text: str) -> set[str]:
    return {name for name, pattern in INTENTS.items() if pattern.search(text)}


def find_skus(text: str) -> list[str]:
    cleaned = _PLACEHOLDER.sub(" ", text)
    found: list[str] = []
    for pattern in (_SKU, _PLAIN_SKU):
        for match in pattern.finditer(cleaned):
            token = match.group(0).upper()
            if not _NOT_SKUS.match(token) and token not in found:
                found.append(token)
    return found


def find_quantity(text: str, sku: str | None = None) -> int | None:
    if sku:
        escaped = re.escape(sku)
        for pattern in (
            rf"(\d{{1,5}})\s?(?:x|×|\*|of|pcs|units?|шт\.?|штук[аи]?|из|من|قطع|قطعة)?\s?{escaped}",
            rf"{escaped}\s?(?:x|×|\*|-|:)\s?(\d{{1,5}})",
            rf"{escaped}[^\d\n]{{0,12}}?(\d{{1,5}})\s?{_QTY_UNITS}",
        ):
            match = re.search(pattern, text, _FLAGS)
            if match:
                return max(1, int(match.group(1)))
    match = _QTY.search(text)
    return max(1, int(match.group(1))) if match else None


def parse_details(text: str, *, positional: bool) -> Details:
    details = Details()
    email = _EMAIL_PLACEHOLDER.search(text)
    if email:
        details.email = email.group(0)
    for pattern in _NAME_PATTERNS:
        match = pattern.search(text)
        if match and match.group(1).split()[0].casefold() not in _NOT_NAMES:
            details.name = match.group(1).strip(" ,.")
            break
    for pattern in _COMPANY_PATTERNS:
        match = pattern.search(text)
        if match:
            details.company = match.group(1).strip(" ,.«»\"'")
            break
    if details.company is None and details.name:
        match = _FROM_COMPANY.search(text)
        if match:
            details.company = match.group(1).strip(" ,.")
    pieces = [piece.strip(" .") for piece in re.split(r"[,;\n،]", _PLACEHOLDER.sub("", text)) if piece.strip(" .")]
    if positional and not (details.name and details.company) and (details.email or len(pieces) >= 2):
        # "John Smith, Acme Ltd, [EMAIL_1]" while we are collecting details: short segments that are no request.
        segments = [
            piece
            for piece in pieces
            if len(piece.split()) <= 5
            and not any(char.isdigit() for char in piece)
            and not detect_intents(piece) - {"thanks", "greeting"}
        ]
        if details.name is None and segments:
            details.name = segments.pop(0)
        elif details.name in segments:
            segments.remove(details.name)
        if details.company is None and segments:
            details.company = segments[0]
    return details


def parse_turn(text: str, context: TurnContext) -> Turn:
    normalized = _ascii_digits(text)
    intents = detect_intents(normalized)
    skus = find_skus(normalized)[:MAX_SKU_LOOKUPS]
    items: list[TurnItem] = []
    explicit = False
    for sku in skus:
        qty = find_quantity(normalized, sku)
        explicit = explicit or qty is not None
        if qty is None:
            known = {item["sku"].upper(): item["qty"] for item in context["selected"]}
            qty = known.get(sku, 1) if len(skus) > 1 else find_quantity(normalized) or known.get(sku, 1)
        items.append(TurnItem(sku=sku, qty=qty))
    collecting = context["stage"] == SalesStage.COMPANY_DETAILS.value
    details = parse_details(normalized, positional=collecting)
    price = _MAX_PRICE.search(normalized)
    max_price = None
    if price:
        raw = price.group(1).replace(" ", "").replace(",", "")
        try:
            max_price = str(Decimal(raw))
        except InvalidOperation:
            max_price = None
    months_match = _MONTHS.search(normalized)
    months = int(months_match.group(1)) if months_match else DEFAULT_FINANCING_MONTHS
    explicit = explicit or (bool(skus) and _QTY.search(normalized) is not None)
    return Turn(normalized, context, intents, skus, items, details, max_price, months, explicit)


# --- reading the run -----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One tool call of this turn and what it returned."""

    tool: str
    args: dict[str, Any]
    status: str  # "ok", "refused", "not_found", "failed", "retried"
    data: dict[str, Any] = field(default_factory=dict[str, Any])


def _current_turn(messages: Sequence[ModelMessage]) -> tuple[int, str, TurnContext] | None:
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if not isinstance(message, ModelRequest):
            continue
        for part in message.parts:
            if isinstance(part, UserPromptPart) and not isinstance(part.content, str):
                for item in part.content:
                    if isinstance(item, TextContent) and isinstance(item.metadata, dict) and TURN_KEY in item.metadata:
                        context: TurnContext = item.metadata[TURN_KEY]
                        return index, item.content, context
    return None


def _outcomes(messages: Sequence[ModelMessage], start: int) -> list[Outcome]:
    calls: dict[str, ToolCallPart] = {}
    outcomes: list[Outcome] = []
    for message in messages[start + 1 :]:
        if isinstance(message, ModelResponse):
            for part in message.parts:
                if isinstance(part, ToolCallPart):
                    calls[part.tool_call_id] = part
        else:
            for request_part in message.parts:
                if not isinstance(request_part, ToolReturnPart):
                    continue
                call = calls.get(request_part.tool_call_id)
                args = call.args_as_dict() if call is not None else {}
                metadata = request_part.metadata if isinstance(request_part.metadata, dict) else {}
                if request_part.outcome != "success":
                    status = "retried" if request_part.outcome == "retried" else "failed"
                else:
                    status = str(metadata.get("status", "ok"))
                outcomes.append(Outcome(request_part.tool_name, args, status, metadata))
    return outcomes


def _called(messages: Sequence[ModelMessage], start: int) -> list[ToolCallPart]:
    return [
        part
        for message in messages[start + 1 :]
        if isinstance(message, ModelResponse)
        for part in message.parts
        if isinstance(part, ToolCallPart)
    ]


# --- planning ------------------------------------------------------------------------------------------------


def _stage_now(turn: Turn, outcomes: Sequence[Outcome]) -> SalesStage:
    stage = SalesStage(turn.context["stage"])
    for outcome in outcomes:
        if outcome.tool == "advance_stage" and outcome.status == "ok" and "stage" in outcome.data:
            stage = SalesStage(outcome.data["stage"])
    return stage


def _has_details(turn: Turn, outcomes: Sequence[Outcome]) -> tuple[bool, bool]:
    saved = {
        name
        for outcome in outcomes
        if outcome.tool == "save_customer_details" and outcome.status == "ok"
        for name in outcome.data.get("saved", [])
    }
    has_name = bool(turn.context["customer_name"]) or "name" in saved
    has_company = bool(turn.context["customer_company"]) or "company" in saved
    return has_name, has_company


def _quote_items(turn: Turn, outcomes: Sequence[Outcome]) -> list[TurnItem]:
    found = {
        outcome.data["product"]["sku"].upper(): outcome.data["product"]["sku"]
        for outcome in outcomes
        if outcome.tool == "get_product" and outcome.status == "ok" and "product" in outcome.data
    }
    if turn.items:
        return [
            TurnItem(sku=found.get(item["sku"], item["sku"]), qty=item["qty"])
            for item in turn.items
            if item["sku"] in found
        ]
    if turn.context["selected"]:
        return list(turn.context["selected"])
    shown = turn.context["shown_skus"]
    if len(shown) == 1:
        return [TurnItem(sku=shown[0], qty=find_quantity(turn.text) or 1)]
    return []


def _accepting(turn: Turn) -> bool:
    """The customer accepts the quote they already have."""
    initial = SalesStage(turn.context["stage"])
    return "accept" in turn.intents and initial is SalesStage.QUOTING and turn.context["has_quote"]


def _wants_quote(turn: Turn) -> bool:
    """The customer wants to buy: asks for a quote, picks products with quantities, or sends quote details."""
    if _accepting(turn):
        return False
    initial = SalesStage(turn.context["stage"])
    if "quote" in turn.intents or "accept" in turn.intents:
        return True
    if initial is SalesStage.COMPANY_DETAILS and turn.details.any():
        return True
    return turn.explicit_qty and bool(turn.items)


def _wants_products(turn: Turn) -> bool:
    if turn.skus or "human" in turn.intents:
        return False
    if "knowledge" in turn.intents and "product" not in turn.intents:
        return False  # "how much is delivery?" is a policy question, not a product search
    if turn.intents & {"product", "price", "stock"}:
        return True
    informative = turn.intents - {"greeting", "thanks"}
    words = [word for word in re.findall(r"\w{3,}", _PLACEHOLDER.sub(" ", turn.text)) if not word.isdigit()]
    return not informative and not turn.details.any() and len(words) >= 2 and "greeting" not in turn.intents


def _call(tool: str, args: dict[str, Any]) -> ToolCallPart:
    return ToolCallPart(tool_name=tool, args=args)


def plan(
    turn: Turn, outcomes: Sequence[Outcome], called: Sequence[ToolCallPart], available: set[str]
) -> list[ToolCallPart]:
    """The next batch of tool calls for this turn (empty when it is time to answer)."""
    done = {(part.tool_name, _key(part.tool_name, part.args_as_dict())) for part in called}
    calls: list[ToolCallPart] = []
    stage = _stage_now(turn, outcomes)

    def want(tool: str, args: dict[str, Any]) -> None:
        if tool in available and (tool, _key(tool, args)) not in done:
            calls.append(_call(tool, args))
            done.add((tool, _key(tool, args)))

    if "human" in turn.intents:
        want("request_human", {"reason": f"Customer asked for a manager: {turn.text[:200]}"})
        return calls
    if any(outcome.tool == "request_human" and outcome.status == "ok" for outcome in outcomes):
        return []

    # Data first, then stage moves: tools in one batch run in order, and stage checks read what data tools found.
    details = turn.details
    if details.any():
        want("save_customer_details", {k: v for k, v in vars(details).items() if v})
    for sku in turn.skus:
        want("get_product", {"sku": sku})
    if "financing" in turn.intents and not turn.skus:
        # "Can I pay it monthly?": the product under discussion, when there is exactly one.
        known = [item["sku"] for item in turn.context["selected"]] or turn.context["shown_skus"]
        if len(known) == 1:
            want("get_product", {"sku": known[0]})
    if _wants_products(turn):
        args: dict[str, Any] = {"query": _PLACEHOLDER.sub(" ", turn.text)[:200].strip()}
        if turn.max_price:
            args["max_price"] = float(turn.max_price)
        want("search_products", args)
    if "knowledge" in turn.intents and not turn.skus:
        want("search_knowledge", {"query": _PLACEHOLDER.sub(" ", turn.text)[:200].strip()})

    target = stage
    quote_wanted = _wants_quote(turn)
    found_products = (
        bool(turn.skus)
        or _wants_products(turn)
        or any(
            outcome.tool in ("search_products", "get_product")
            and outcome.status == "ok"
            and (outcome.data.get("products") or outcome.data.get("product"))
            for outcome in outcomes
        )
    )
    if stage is SalesStage.GREETING:
        target = SalesStage.QUALIFYING
    if found_products and _order(stage) < _order(SalesStage.SOLUTION):
        target = SalesStage.SOLUTION
    items = _quote_items(turn, outcomes)
    has_name, has_company = _has_details(turn, outcomes)
    if quote_wanted and (items or turn.skus):
        target = SalesStage.QUOTING if has_name and has_company else SalesStage.COMPANY_DETAILS
    if _accepting(turn):
        target = SalesStage.CLOSING
    if _order(target) > _order(stage) and not _refused_move(outcomes):
        for hop in path_to(stage, target):
            if hop is SalesStage.COMPANY_DETAILS and not items:
                break  # the chosen products are confirmed by get_product first (next round)
            args = {"to_stage": hop.value, "reason": _hop_reason(turn, hop)}
            if hop is SalesStage.COMPANY_DETAILS:
                args["selected_items"] = [dict(item) for item in items]
            want("advance_stage", args)

    entered_quoting = any(
        outcome.tool == "advance_stage" and outcome.status == "ok" and outcome.data.get("stage") == "quoting"
        for outcome in outcomes
    )
    if stage is SalesStage.QUOTING and (quote_wanted or entered_quoting) and items and not _quoted(outcomes):
        want("create_quote", {"items": [dict(item) for item in items]})
    if "financing" in turn.intents:
        price = _financing_price(outcomes)
        if price is not None:
            want("calculate_financing", {"price": float(price), "months": turn.months})
    return calls


_STAGE_ORDER = list(SalesStage)


def _order(stage: SalesStage) -> int:
    return _STAGE_ORDER.index(stage)


def _key(tool: str, args: dict[str, Any]) -> str:
    if tool == "advance_stage":
        return str(args.get("to_stage"))
    if tool in ("get_product",):
        return str(args.get("sku", "")).upper()
    return tool


def _hop_reason(turn: Turn, hop: SalesStage) -> str:
    if hop is SalesStage.NEEDS_ANALYSIS:
        return _PLACEHOLDER.sub(" ", turn.text)[:200].strip() or "customer described a need"
    return {
        SalesStage.QUALIFYING: "the customer wrote to us",
        SalesStage.SOLUTION: "matching products were found and shown",
        SalesStage.COMPANY_DETAILS: "the customer chose products",
        SalesStage.QUOTING: "company details are collected",
        SalesStage.CLOSING: "the customer accepted the quote",
    }.get(hop, "next step")


def _refused_move(outcomes: Sequence[Outcome]) -> bool:
    return any(outcome.tool == "advance_stage" and outcome.status == "refused" for outcome in outcomes)


def _quoted(outcomes: Sequence[Outcome]) -> bool:
    return any(outcome.tool == "create_quote" for outcome in outcomes)


def _financing_price(outcomes: Sequence[Outcome]) -> Decimal | None:
    for outcome in reversed(outcomes):
        if outcome.status != "ok":
            continue
        if outcome.tool == "create_quote":
            return Decimal(outcome.data["quote"]["total"])
        if outcome.tool == "get_product" and "product" in outcome.data:
            return Decimal(outcome.data["product"]["price"])
        if outcome.tool == "search_products" and len(outcome.data.get("products", [])) == 1:
            return Decimal(outcome.data["products"][0]["price"])
    return None


# --- composing -----------------------------------------------------------------------------------------------

TEXTS: dict[str, dict[str, str]] = {
    "welcome_back": {
        "en": "Last time you asked about the {product} — still interested?",
        "ru": "В прошлый раз вы спрашивали про {product} — ещё актуально?",
        "ar": "في المرة السابقة سألت عن {product} — هل ما زلت مهتمًا؟",
    },
    "hello": {
        "en": "Hello! I'm {assistant} from {company}. What are you looking for today?",
        "ru": "Здравствуйте! Я {assistant} из {company}. Что вы ищете сегодня?",
        "ar": "مرحبًا! أنا {assistant} من {company}. عن ماذا تبحث اليوم؟",
    },
    "found": {
        "en": "Here is what I found:",
        "ru": "Вот что я нашла:",
        "ar": "إليك ما وجدته:",
    },
    "choose": {
        "en": "Which one would you like, and how many units? I can prepare a quote.",
        "ru": "Какой вариант вам подходит и сколько штук нужно? Я подготовлю коммерческое предложение.",
        "ar": "أيّها يناسبك، وكم وحدة تحتاج؟ يمكنني تجهيز عرض سعر لك.",
    },
    "nothing": {
        "en": "I couldn't find that in our catalog. Could you describe it differently, or tell me your budget?",
        "ru": "Я не нашла такого в каталоге. Опишите, пожалуйста, иначе или подскажите ваш бюджет.",
        "ar": "لم أجد ذلك في كتالوجنا. هل يمكنك وصفه بطريقة أخرى أو إخباري بميزانيتك؟",
    },
    "not_found_sku": {
        "en": "I couldn't find SKU {sku} in our catalog.",
        "ru": "Артикул {sku} не найден в каталоге.",
        "ar": "لم أجد المنتج برمز {sku} في كتالوجنا.",
    },
    "in_stock": {"en": "{stock} in stock", "ru": "в наличии: {stock}", "ar": "متوفر: {stock}"},
    "out_of_stock": {"en": "out of stock", "ru": "нет в наличии", "ar": "غير متوفر حاليًا"},
    "ask_details": {
        "en": "Great choice! To prepare the quote, please send your name, your company name and an e-mail address.",
        "ru": (
            "Отличный выбор! Для коммерческого предложения пришлите, пожалуйста, ваше имя, название компании и e-mail."
        ),
        "ar": "اختيار رائع! لتجهيز عرض السعر، أرسل لي من فضلك اسمك واسم شركتك وبريدك الإلكتروني.",
    },
    "ask_missing": {
        "en": "Thank you! I still need your {missing} to prepare the quote.",
        "ru": "Спасибо! Для коммерческого предложения мне ещё нужно: {missing}.",
        "ar": "شكرًا! ما زلت أحتاج إلى {missing} لتجهيز عرض السعر.",
    },
    "missing_name": {"en": "name", "ru": "ваше имя", "ar": "اسمك"},
    "missing_company": {"en": "company name", "ru": "название компании", "ar": "اسم شركتك"},
    "and": {"en": " and ", "ru": " и ", "ar": " و"},
    "ask_product": {
        "en": "Which product (name or SKU) and how many units would you like in the quote?",
        "ru": "Какой товар (название или артикул) и сколько штук включить в предложение?",
        "ar": "ما المنتج (الاسم أو الرمز) وكم وحدة تريد في عرض السعر؟",
    },
    "quote_intro": {
        "en": "Here is your quote #{id}:",
        "ru": "Ваше коммерческое предложение №{id}:",
        "ar": "إليك عرض السعر رقم {id}:",
    },
    "subtotal": {"en": "Subtotal", "ru": "Сумма", "ar": "المجموع الفرعي"},
    "discount": {"en": "Discount", "ru": "Скидка", "ar": "الخصم"},
    "total": {"en": "Total", "ru": "Итого", "ar": "الإجمالي"},
    "quote_next": {
        "en": "Shall I confirm the order?",
        "ru": "Подтверждаем заказ?",
        "ar": "هل أؤكد الطلب؟",
    },
    "quote_refused": {
        "en": "I'm sorry, I can offer a discount of at most {cap}% on a quote.",
        "ru": "К сожалению, скидка в предложении может быть не больше {cap}%.",
        "ar": "عذرًا، أقصى خصم يمكنني تقديمه في عرض السعر هو {cap}%.",
    },
    "closing": {
        "en": (
            "Thank you for your order! A manager will send you the proforma invoice and arrange payment and delivery."
        ),
        "ru": "Спасибо за заказ! Менеджер пришлёт вам счёт и согласует оплату и доставку.",
        "ar": "شكرًا لطلبك! سيرسل لك أحد مديرينا الفاتورة المبدئية وينسق معك الدفع والتوصيل.",
    },
    "objection": {
        "en": (
            "I understand. Our prices come straight from the catalog; on a quote we can offer a volume "
            "discount of up to {cap}%. Shall I show you more affordable options?"
        ),
        "ru": (
            "Понимаю. Цены у нас из каталога; в коммерческом предложении возможна скидка за объём до "
            "{cap}%. Показать более доступные варианты?"
        ),
        "ar": (
            "أتفهم ذلك. أسعارنا من الكتالوج مباشرة، ويمكننا في عرض السعر تقديم خصم على الكميات حتى {cap}%. "
            "هل أعرض عليك خيارات أوفر؟"
        ),
    },
    "financing": {
        "en": "For {price} {currency} over {months} months: {payment} {currency} per month (total {total} {currency}).",
        "ru": (
            "{price} {currency} в рассрочку на {months} мес.: {payment} {currency} в месяц (всего {total} {currency})."
        ),
        "ar": (
            "{price} {currency} بالتقسيط على {months} شهرًا: {payment} {currency} شهريًا (الإجمالي {total} {currency})."
        ),
    },
    "financing_need_product": {
        "en": "Instalments are possible. Which product should I calculate them for?",
        "ru": "Рассрочка возможна. Для какого товара её рассчитать?",
        "ar": "التقسيط متاح. لأي منتج أحسبه لك؟",
    },
    "thanks": {
        "en": "You're welcome! Write any time if you need anything else.",
        "ru": "Пожалуйста! Пишите, если что-то понадобится.",
        "ar": "على الرحب والسعة! راسلني في أي وقت إذا احتجت أي شيء.",
    },
    "thank_you_name": {"en": "Thank you, {name}!", "ru": "Спасибо, {name}!", "ar": "شكرًا، {name}!"},
    "saved": {
        "en": "Thank you, I've noted your details.",
        "ru": "Спасибо, я записала ваши данные.",
        "ar": "شكرًا، لقد سجلت بياناتك.",
    },
    "fallback": {
        "en": "Could you tell me what you are looking for? For example a product type, a quantity or a budget.",
        "ru": "Подскажите, пожалуйста, что вы ищете? Например, тип товара, количество или бюджет.",
        "ar": "هل يمكنك إخباري عمّا تبحث عنه؟ مثلًا نوع المنتج أو الكمية أو الميزانية.",
    },
    "check_later": {
        "en": "I couldn't check that right now. A manager can help: just ask for one.",
        "ru": "Сейчас не получилось это проверить. Если хотите, подключу менеджера.",
        "ar": "لم أتمكن من التحقق من ذلك الآن. يمكنني تحويلك إلى أحد المديرين إذا رغبت.",
    },
    "knowledge_none": {
        "en": "I don't have that information at hand. Shall I connect you with a manager?",
        "ru": "У меня нет этой информации под рукой. Подключить менеджера?",
        "ar": "لا تتوفر لدي هذه المعلومة الآن. هل أوصلك بأحد المديرين؟",
    },
}


def text(key: str, language: str, **values: Any) -> str:
    templates = TEXTS[key]
    return templates.get(language, templates["en"]).format(**values)


def _stock_phrase(stock: int, language: str) -> str:
    return text("in_stock", language, stock=stock) if stock > 0 else text("out_of_stock", language)


def _product_sentence(product: dict[str, Any], language: str) -> str:
    return (
        f"• {product['name']} (SKU {product['sku']}): {product['price']} {product['currency']}, "
        f"{_stock_phrase(int(product['stock']), language)}"
    )


def _quote_text(quote: dict[str, Any], language: str) -> str:
    currency = quote["currency"]
    lines = [text("quote_intro", language, id=quote["id"])]
    lines += [
        f"• {item['name']} (SKU {item['sku']}) × {item['qty']} @ {item['unit_price']} = {item['line_total']} {currency}"
        for item in quote["items"]
    ]
    lines.append(f"{text('subtotal', language)}: {quote['subtotal']} {currency}")
    if Decimal(quote["discount_pct"]):
        discount_pct = f"{Decimal(quote['discount_pct']).normalize():f}"
        lines.append(f"{text('discount', language)} {discount_pct}%: -{quote['discount_amount']} {currency}")
    lines.append(f"{text('total', language)}: {quote['total']} {currency}")
    return "\n".join(lines)


def compose(turn: Turn, outcomes: Sequence[Outcome]) -> str:
    """The reply, composed only from this turn's tool results."""
    language = turn.context["language"]
    context = turn.context
    by_tool: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_tool.setdefault(outcome.tool, []).append(outcome)

    def ok(tool: str) -> list[Outcome]:
        return [outcome for outcome in by_tool.get(tool, []) if outcome.status == "ok"]

    if ok("request_human"):
        return context["handoff_text"]
    parts: list[str] = []
    saved = ok("save_customer_details")
    if saved:
        name = turn.details.name or context["customer_name"]
        parts.append(text("thank_you_name", language, name=name) if name else text("saved", language))

    quotes = ok("create_quote")
    if quotes:
        parts.append(_quote_text(quotes[-1].data["quote"], language))
        parts.append(text("quote_next", language))
        return "\n\n".join(parts)
    if any(outcome.status == "refused" for outcome in by_tool.get("create_quote", [])):
        parts.append(text("quote_refused", language, cap=context["discount_cap"]))

    stage = _stage_now(turn, outcomes)
    if stage is SalesStage.CLOSING and any(o.data.get("stage") == "closing" for o in ok("advance_stage")):
        parts.append(text("closing", language))
        return "\n\n".join(parts)

    products = [outcome.data["product"] for outcome in ok("get_product") if "product" in outcome.data]
    missing_skus = [
        outcome.data.get("sku", "") for outcome in by_tool.get("get_product", []) if outcome.status == "not_found"
    ]
    searched = ok("search_products")
    hits = [hit for outcome in searched for hit in outcome.data.get("products", [])][:3]
    for sku in missing_skus:
        parts.append(text("not_found_sku", language, sku=sku))
    if products:
        parts.append("\n".join(_product_sentence(product, language) for product in products))
    elif hits:
        parts.append(text("found", language) + "\n" + "\n".join(_product_sentence(hit, language) for hit in hits))
    elif searched:
        parts.append(text("nothing", language))

    financing = ok("calculate_financing")
    if financing:
        data = financing[-1].data["financing"]
        parts.append(
            text(
                "financing",
                language,
                price=data["price"],
                months=data["months"],
                payment=data["monthly_payment"],
                total=data["total_paid"],
                currency=data["currency"],
            )
        )
    elif "financing" in turn.intents and not products:
        parts.append(text("financing_need_product", language))

    knowledge = [hit for outcome in ok("search_knowledge") for hit in outcome.data.get("knowledge", [])]
    if knowledge:
        content = " ".join(str(knowledge[0]["content"]).split())
        parts.append(content if len(content) <= 600 else content[:599].rstrip() + "…")
    elif ok("search_knowledge") and not parts:
        parts.append(text("knowledge_none", language))

    if any(outcome.status == "failed" for outcome in outcomes) and not parts:
        parts.append(text("check_later", language))

    if "objection" in turn.intents and not quotes:
        parts.append(text("objection", language, cap=context["discount_cap"]))

    # What to ask next, by where the conversation stands now.
    has_name, has_company = _has_details(turn, outcomes)
    if stage is SalesStage.COMPANY_DETAILS:
        missing = [
            text(key, language)
            for key, present in (("missing_name", has_name), ("missing_company", has_company))
            if not present
        ]
        if not saved:
            parts.append(text("ask_details", language))
        elif missing:
            parts.append(text("ask_missing", language, missing=text("and", language).join(missing)))
    elif _wants_quote(turn) and not _quote_items(turn, outcomes):
        parts.append(text("ask_product", language))
    elif products or hits:
        parts.append(text("choose", language))

    if not parts:
        if "thanks" in turn.intents:
            parts.append(text("thanks", language))
        elif "greeting" in turn.intents or SalesStage(context["stage"]) is SalesStage.GREETING:
            parts.append(text("hello", language, assistant=context["assistant"], company=context["company"]))
            if context.get("returning_product"):
                parts.append(text("welcome_back", language, product=context.get("returning_product")))
        else:
            parts.append(text("fallback", language))
    return "\n\n".join(parts)


# --- the model -----------------------------------------------------------------------------------------------


async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """One model step: the next batch of tool calls, or the final answer."""
    current = _current_turn(messages)
    if current is None:
        # Not a turn of the sales service (no turn context): answer generically rather than guess.
        return ModelResponse(parts=[TextPart(text("fallback", "en"))], model_name=OFFLINE_MODEL_NAME)
    index, customer_text, context = current
    turn = parse_turn(customer_text, context)
    outcomes = _outcomes(messages, index)
    available = {tool.name for tool in info.function_tools}
    calls = plan(turn, outcomes, _called(messages, index), available)
    if calls:
        return ModelResponse(parts=list(calls), model_name=OFFLINE_MODEL_NAME)
    return ModelResponse(parts=[TextPart(compose(turn, outcomes))], model_name=OFFLINE_MODEL_NAME)


def offline_model() -> FunctionModel:
    """The offline responder as a pydantic-ai model."""
    return FunctionModel(respond, model_name=OFFLINE_MODEL_NAME)
