"""Keeping personal data out of logs and dead letters.

Errors from drivers and providers often quote what they refused (`<ann@example.com>: mailbox
unavailable`, a phone number, an SQL parameter); everything written to a log line or a
dead-letter header passes through `redact` first.
"""

import re

_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# International (`+81 90-1234-5678`) and long national numbers; short numbers (ids, counts,
# SMTP codes such as 550 or 5.1.1) are left alone.
# Dates (`2026-12-01`) are not phone numbers.
_PHONE = re.compile(r"(?<![\w.])(?!\d{4}-\d\d-\d\d)\+?\d[\d\s().-]{8,}\d(?![\w.])")


def redact(text: str) -> str:
    """`text` with email addresses and phone numbers replaced by placeholders."""
    return _PHONE.sub("[phone]", _EMAIL.sub("[email]", text))
