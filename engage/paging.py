"""AIP-158 list paging, one way for every service: `page_size` with one default and one
maximum, and opaque, versioned page tokens that continue a keyset scan after the last row.

A token is URL-safe base64 of a small JSON object: the format version, the key of the last row
returned, and a digest of the request's filter, so a token is refused when the filter changes
between pages (AIP-158: the other request fields must not change).
"""

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy.orm import InstrumentedAttribute
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from engage.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
TOKEN_VERSION = 1

Key = str | int
RowT = TypeVar("RowT")


def page_size(requested: int) -> int:
    """The page size to use for a request's `page_size` (0 means the default)."""
    if requested < 0:
        raise InvalidArgument("page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(after: Key, scope: str = "") -> str:
    """A token for the page that starts after the row keyed `after`; `scope` is the request's
    filter (or anything else that must stay the same from page to page)."""
    body = {"v": TOKEN_VERSION, "after": after, "scope": _digest(scope)}
    return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()


def decode_token(token: str, scope: str = "") -> Key | None:
    """The key a page token continues after; None for the first page (no token)."""
    if not token:
        return None
    try:
        body = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _not_ours() from None
    if not isinstance(body, dict) or body.get("v") != TOKEN_VERSION:
        raise _not_ours()
    after = body.get("after")
    if isinstance(after, bool) or not isinstance(after, str | int) or after == "":
        raise _not_ours()
    if body.get("scope") != _digest(scope):
        raise InvalidArgument("page_token", "was issued for a different filter")
    return after


async def keyset_page(
    session: AsyncSession,
    query: SelectOfScalar[RowT],
    key: InstrumentedAttribute[Any] | Any,
    size: int,
    token: str,
    scope: str = "",
) -> tuple[list[RowT], str]:
    """One page of `query`'s rows in `key` order after the token's position, and the next
    page's token ("" on the last page)."""
    after = decode_token(token, scope)
    query = query.order_by(col(key)).limit(size + 1)
    if after is not None:
        query = query.where(col(key) > after)
    rows: Sequence[RowT] = (await session.exec(query)).all()
    return page_of(list(rows), size, lambda row: getattr(row, key.key), scope)


def page_of(rows: list[RowT], size: int, key_of: Any, scope: str = "") -> tuple[list[RowT], str]:
    """Cut `size + 1` fetched rows to a page and the token that continues after it."""
    if len(rows) <= size:
        return rows, ""
    rows = rows[:size]
    return rows, encode_token(key_of(rows[-1]), scope)


def _digest(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:16]


def _not_ours() -> InvalidArgument:
    return InvalidArgument("page_token", "is not a token from a previous page of this list")
