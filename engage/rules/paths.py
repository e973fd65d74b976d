"""Paths into JSON documents (traits, event properties): how a rule names a nested value.

A path is keys joined by dots, `address.city`; a key that itself holds a dot is written in
double quotes, `"utm.source"` or `context."a.b".c` (as in SQLite's and PostgreSQL's JSON
paths). A key is 1-128 letters, digits, spaces or `_-:@/$` (a quoted key may hold dots too);
a path has at most 8 keys and 256 characters. Each key names a member of an object: a path
never steps into an array (`items.0` is the member "0" of an object, not an element).
"""

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

MAX_KEYS = 8
MAX_KEY = 128
MAX_PATH = 256
_KEY_CHARS = r"\w\-:@/$ "
_BARE = re.compile(rf"[{_KEY_CHARS}]+")
_QUOTED = re.compile(rf'"([{_KEY_CHARS}.]+)"')
_FORM = 'keys joined by dots, a key with a dot in double quotes ("utm.source")'

Keys = tuple[str, ...]
T = TypeVar("T")


@functools.lru_cache(maxsize=4096)
def parse(path: str) -> Keys:
    """The keys of a path; ValueError says what is wrong with it, in a marketer's words.
    Cached: the evaluator reads the same few paths for every profile."""
    if len(path) > MAX_PATH:
        raise ValueError(f"must be at most {MAX_PATH} characters")
    keys: list[str] = []
    at = 0
    while True:
        quoted = path.startswith('"', at)
        found = (_QUOTED if quoted else _BARE).match(path, at)
        if found is None:
            raise ValueError(
                f"must be {_FORM}; each key 1-{MAX_KEY} letters, digits, spaces or _-:@/$"
            )
        key = found.group(1) if quoted else found.group(0)
        if len(key) > MAX_KEY:
            raise ValueError(f"has a key longer than {MAX_KEY} characters")
        keys.append(key)
        at = found.end()
        if at == len(path):
            break
        if path[at] != ".":
            raise ValueError(f"must be {_FORM}")
        at += 1
    if len(keys) > MAX_KEYS:
        raise ValueError(f"must have at most {MAX_KEYS} keys")
    return tuple(keys)


def canonical(keys: Keys) -> str:
    """The one way to write a path: keys bare, quoted only when they hold a dot."""
    return ".".join(f'"{key}"' if "." in key else key for key in keys)


def lookup(document: object, path: str) -> Any:
    """The value at `path` in a document; None when a key is missing (or the value is null)."""
    return lookup_keys(document, parse(path))


def lookup_keys(document: object, keys: Keys) -> Any:
    """The value at the path of these keys (see `lookup`)."""
    value = document
    for key in keys:
        # The exact type first: an ABC check costs several times more, on every rule read.
        if type(value) is not dict and not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def is_key(key: object) -> bool:
    """Whether a rule can name this key (so it belongs in an index keyed by path)."""
    return isinstance(key, str) and 0 < len(key) <= MAX_KEY and bool(_QUOTED.fullmatch(f'"{key}"'))


def leaves(document: Mapping[str, Any], within: Keys = ()) -> Iterator[tuple[Keys, Any]]:
    """Every value a path can reach that is not an object, with its keys (objects are walked,
    arrays are not), depth first."""
    for key, value in document.items():
        if not is_key(key):
            continue
        keys = (*within, key)
        if isinstance(value, Mapping):
            if len(keys) < MAX_KEYS:
                yield from leaves(value, keys)
        else:
            yield keys, value


def nest(flat: Mapping[Keys, T], shape: Callable[[T], Any]) -> dict[str, Any]:
    """A document holding `shape(value)` at each path: the inverse of `leaves`."""
    document: dict[str, Any] = {}
    for keys, value in flat.items():
        node = document
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = shape(value)
    return document
