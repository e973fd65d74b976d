"""Durations as the contracts write them in text: `18d`, `12h`, `30m`, `2w`, `1d12h`, `-7d`.

The form of the YAML rule language and of a rule's BETWEEN offsets on the wire; the segments
service and the `engage` CLI read and write it through these two functions.
"""

import re
from datetime import timedelta

from engage.errors import InvalidArgument

_DURATION = re.compile(r"^(-)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS = (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def parse_duration(text: str, field: str) -> timedelta:
    """Whole seconds from `18d`-style text; InvalidArgument on `field` if it is not one."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not match or not any(match.groups()[1:]):
        raise InvalidArgument(field, "must be a duration like 18d, 12h, 30m or -7d")
    seconds = sum(
        int(n or 0) * unit for n, (_, unit) in zip(match.groups()[1:], _UNITS, strict=True)
    )
    return timedelta(seconds=-seconds if match.group(1) else seconds)


def format_duration(duration: timedelta) -> str:
    """The shortest text `parse_duration` reads back as `duration` (whole seconds)."""
    seconds = int(duration.total_seconds())
    sign, rest, parts = ("-" if seconds < 0 else ""), abs(seconds), []
    if rest and rest % 604_800 == 0:
        return f"{sign}{rest // 604_800}w"
    # Weeks only when exact: "18d" reads better than "2w4d".
    for name, unit in _UNITS[1:]:
        if rest >= unit:
            parts.append(f"{rest // unit}{name}")
            rest %= unit
    return sign + ("".join(parts) or "0s")
