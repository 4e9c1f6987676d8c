"""Customer questions about products of the demo catalog, each with the SKU that must come back in the top 5.

Written the way customers write on WhatsApp (full sentences, brand names in Latin script inside Arabic and
Russian text, inflected words), not copied from the product names.
"""

from __future__ import annotations

LABELED_QUERIES: list[tuple[str, str, str]] = [
    # (language, query, expected SKU)
    ("en", "HP LaserJet Pro M404dn", "HP-LJPM404DN"),
    ("en", "do you have the ThinkPad X1 Carbon?", "LEN-TP-X1C11"),
    ("en", "MacBook Air M3 15 inch", "APL-MBA15-M3"),
    ("en", "I want the MX Master wireless mouse", "LOG-MXM3S"),
    ("en", "Ubiquiti U6 Pro access point", "UBQ-U6PRO"),
    ("en", "APC smart UPS 1500VA for our server rack", "APC-SMT1500IC"),
    ("en", "synology nas with 4 bays", "SYN-DS923P"),
    ("en", "toner for HP M404", "HP-CF259A"),
    ("en", "Jabra Evolve2 65 wireless headset", "JAB-EV2-65"),
    ("en", "electric standing desk", "FUR-DESK-STAND140"),
    ("en", "cross cut paper shredder", "FEL-79CI"),
    ("en", "short throw laser projector for a classroom", "EPS-EBL210SW"),
    ("en", "Fortinet firewall", "FTN-FG40F"),
    ("en", "price of Microsoft 365 Business Standard", "MS-365-BSTD-1Y"),
    ("en", "fingerprint time attendance machine", "ZKT-K40"),
    ("en", "Logitech Rally Bar for our boardroom", "LOG-RALLYBAR"),
    ("en", "box of cat6 cable 305m", "CAB-CAT6-305"),
    ("ar", "طابعة ليزر HP M404dn", "HP-LJPM404DN"),
    ("ar", "عندكم ماك بوك اير M3 مقاس 15؟", "APL-MBA15-M3"),
    ("ar", "جهاز UPS أونلاين Eaton للسيرفرات", "EAT-9SX2000I"),
    ("ar", "آلة تمزيق الورق Fellowes", "FEL-79CI"),
    ("ar", "جهاز بصمة للحضور والانصراف", "ZKT-SPEEDFACE"),
    ("ar", "أريد آلة عد النقود", "SAF-2465S"),
    ("ar", "سويتش PoE من سيسكو", "CSC-CBS3508P"),
    ("ar", "بروجكتر قصير المدى للفصول", "EPS-EBL210SW"),
    ("ar", "هاتف IP لاسلكي", "YEA-W73P"),
    ("ar", "كاميرا مراقبة Dahua", "DAH-IPCB2"),
    ("ar", "ورق تصوير A4", "PAP-DOUBLEA-A4"),
    ("ar", "حامل شاشتين Ergotron", "ERG-LXDUAL"),
    ("ar", "مكتب كهربائي بارتفاع قابل للتعديل", "FUR-DESK-STAND140"),
    ("ru", "ноутбук Lenovo ThinkPad T14", "LEN-TP-T14G4-I7"),
    ("ru", "монитор Dell 27 дюймов 4K", "DEL-U2723QE"),
    ("ru", "лазерный принтер Brother", "BRO-HLL2350DW"),
    ("ru", "ИБП APC на 1500", "APC-SMT1500IC"),
    ("ru", "сетевое хранилище Synology", "SYN-DS923P"),
    ("ru", "беспроводная клавиатура и мышь Logitech", "LOG-MK295-RU"),
    ("ru", "картридж HP 151A", "HP-W1510A"),
    ("ru", "веб-камеру Logitech 4K", "LOG-BRIO4K"),
    ("ru", "нужен шредер для офиса", "FEL-79CI"),
    ("ru", "IP-телефоны Yealink", "YEA-T31P"),
    ("ru", "подписка Microsoft 365 Business Premium", "MS-365-BPREM-1Y"),
    ("ru", "планшет Samsung Galaxy Tab S9", "SAM-TABS9FE"),
    ("ru", "межсетевой экран FortiGate", "FTN-FG40F"),
    ("ru", "счетчик банкнот", "SAF-2465S"),
]
