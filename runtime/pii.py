"""Find and redact personal data in text: emails, phone numbers, card numbers (Luhn), IP addresses.

Stdlib only, so the data checks and the monitoring's prediction-log redaction share one definition.
`find_pii(text)` → matches with kind and span; `redact(text)` → the text with each match replaced by
`[EMAIL]`, `[PHONE]`, `[CARD]`, `[IP]`.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

PII_KINDS = ("email", "card", "ip", "phone")  # order = priority when matches overlap
PLACEHOLDERS = {"email": "[EMAIL]", "card": "[CARD]", "ip": "[IP]", "phone": "[PHONE]"}

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# 13-19 digits, optionally grouped by single spaces or dashes (4-4-4-4, 4-6-5, ...)
CARD_RE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
IPV4_RE = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
IPV6_RE = re.compile(r"(?<![:\w])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{1,4}){0,6}(?![:\w])")
# international (+CC ...) or national numbers with separators: 7-15 digits in total
PHONE_RE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?![\w])"
    r"|(?<![\w+])\+\d{7,15}(?!\w)"
)


@dataclass(frozen=True)
class PIIMatch:
    """One piece of personal data: its kind, the matched text and where it sits."""

    kind: str
    text: str
    start: int
    end: int


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum that every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_card(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_phone(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    # 7-15 digits (E.164), and not a date-like or version-like "2024.01.02"
    return 7 <= len(digits) <= 15 and not re.fullmatch(r"\d{4}[.-]\d{1,2}[.-]\d{1,2}", text)


_FINDERS = {
    "email": (EMAIL_RE, lambda s: True),
    "card": (CARD_RE, _is_card),
    "ip": (re.compile(f"{IPV4_RE.pattern}|{IPV6_RE.pattern}"), _is_ip),
    "phone": (PHONE_RE, _is_phone),
}


def find_pii(text: str, kinds: tuple[str, ...] = PII_KINDS) -> list[PIIMatch]:
    """All non-overlapping PII matches in text, in order (earlier kinds in PII_KINDS win overlaps)."""
    unknown = set(kinds) - set(PII_KINDS)
    if unknown:
        raise ValueError(f"unknown PII kinds {sorted(unknown)}; known: {list(PII_KINDS)}")
    taken: list[PIIMatch] = []
    for kind in PII_KINDS:
        if kind not in kinds:
            continue
        pattern, valid = _FINDERS[kind]
        for m in pattern.finditer(text):
            if not valid(m.group()):
                continue
            if any(m.start() < t.end and t.start < m.end() for t in taken):
                continue
            taken.append(PIIMatch(kind, m.group(), m.start(), m.end()))
    return sorted(taken, key=lambda t: t.start)


def redact(text: str, kinds: tuple[str, ...] = PII_KINDS) -> str:
    """The text with every PII match replaced by its placeholder ([EMAIL], [PHONE], [CARD], [IP])."""
    out, last = [], 0
    for m in find_pii(text, kinds):
        out += [text[last:m.start], PLACEHOLDERS[m.kind]]
        last = m.end
    out.append(text[last:])
    return "".join(out)


def count_pii(texts: list[str]) -> dict[str, int]:
    """How many matches of each kind a list of texts holds."""
    counts = {k: 0 for k in PII_KINDS}
    for text in texts:
        for m in find_pii(text):
            counts[m.kind] += 1
    return counts
