"""AIP-158 page tokens: opaque to callers, the last row's id inside."""

import base64

from engage.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode()


def decode_token(token: str) -> int | None:
    """The id after which the page starts; None for the first page."""
    if not token:
        return None
    try:
        version, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if version != "v1":
            raise ValueError(version)
        return int(value)
    except ValueError as error:
        raise InvalidArgument("page_token", "is not a token this service issued") from error
