"""List paging is one AIP-158 format everywhere: bounded page sizes and opaque tokens that
continue where the last page ended and refuse what they did not issue."""

import base64
import json

import pytest

from engage import paging
from engage.errors import InvalidArgument


def test_page_size_defaults_and_is_capped() -> None:
    assert paging.page_size(0) == paging.DEFAULT_PAGE_SIZE
    assert paging.page_size(7) == 7
    assert paging.page_size(10**6) == paging.MAX_PAGE_SIZE


def test_a_negative_page_size_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidArgument) as raised:
        paging.page_size(-1)
    assert raised.value.field == "page_size"


@pytest.mark.parametrize("after", ["profile-9", 41])
def test_a_token_continues_after_the_key_it_carries(after: str | int) -> None:
    assert paging.decode_token(paging.encode_token(after, "email = x"), "email = x") == after
    assert paging.decode_token("") is None


def test_a_token_issued_for_another_filter_is_refused() -> None:
    token = paging.encode_token("p1", scope="segment = vip")
    with pytest.raises(InvalidArgument) as raised:
        paging.decode_token(token, scope="segment = churned")
    assert raised.value.field == "page_token"


def _raw(body: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode()


@pytest.mark.parametrize(
    "token",
    [
        "not base64 at all!",
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        _raw(["after"]),
        _raw({"v": 2, "after": "p1", "scope": ""}),
        _raw({"v": 1, "after": True}),
        _raw({"v": 1, "after": ""}),
        base64.urlsafe_b64encode(b"v1:42").decode(),
    ],
)
def test_tokens_this_service_did_not_issue_are_refused(token: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        paging.decode_token(token)
    assert raised.value.field == "page_token"


def test_page_of_cuts_the_lookahead_row_and_names_the_last_key() -> None:
    rows, token = paging.page_of([1, 2, 3], 2, lambda row: row)
    assert rows == [1, 2]
    assert paging.decode_token(token) == 2
    assert paging.page_of([1, 2], 2, lambda row: row) == ([1, 2], "")
