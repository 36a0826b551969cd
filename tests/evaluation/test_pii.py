"""PII finder/redactor: known answers for each kind, and no false alarms on ordinary ticket text."""
from __future__ import annotations

import pytest

from runtime.pii import count_pii, find_pii, luhn_valid, redact


@pytest.mark.parametrize(
    ("text", "kinds", "redacted"),
    [
        ("write to jane.doe+x@mail.example.org today", ["email"], "write to [EMAIL] today"),
        ("call +44 20 7946 0958 now", ["phone"], "call [PHONE] now"),
        ("card 4111 1111 1111 1111 please", ["card"], "card [CARD] please"),
        ("card 4111-1111-1111-1112 fails Luhn", [], "card 4111-1111-1111-1112 fails Luhn"),
        ("from 10.0.0.255 and 2001:db8::8a2e:370:7334", ["ip", "ip"], "from [IP] and [IP]"),
        ("not an ip 300.1.2.3, a date 2024-01-02, a price 19.99", [], "not an ip 300.1.2.3, a date 2024-01-02, a price 19.99"),
    ],
)
def test_find_and_redact(text: str, kinds: list[str], redacted: str) -> None:
    assert [m.kind for m in find_pii(text)] == kinds
    assert redact(text) == redacted


def test_luhn_and_counts() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    counts = count_pii(["a@b.io and c@d.io", "ip 8.8.8.8", "nothing"])
    assert counts == {"email": 2, "card": 0, "ip": 1, "phone": 0}
    with pytest.raises(ValueError, match="unknown PII kinds"):
        find_pii("x", kinds=("ssn",))
