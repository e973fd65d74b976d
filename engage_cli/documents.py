"""YAML files as a marketer wrote them: their documents, the line each key and item was written
on, and errors that point there (`vip.yaml:4: rule.all[1].equals: must be a number`).

A file may hold several documents separated by `---` (what `engage export` prints); each is read
with the YAML 1.2 core-schema meanings of `rules_yaml.MarketerYamlLoader`.
"""

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engage_cli.rules_yaml import MarketerYamlLoader

# Where a value sits in a document: mapping keys and list indexes from the top, e.g.
# ("rule", "all", 1, "equals").
KeyPath = tuple[str | int, ...]


def key_text(path: KeyPath) -> str:
    """A key path as a marketer reads it: `rule.all[1].equals`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


class FileError(ValueError):
    """Something wrong in a file, named by file, line and key: one line for the marketer."""

    def __init__(self, file: Path, message: str, line: int = 0, key: KeyPath = ()) -> None:
        self.file, self.line, self.key, self.message = file, line, key, message
        where = f"{file}:{line}" if line else str(file)
        super().__init__(f"{where}: {key_text(key)}: {message}" if key else f"{where}: {message}")


@dataclass(frozen=True)
class Document:
    """One YAML document of a file, with the line (1-based) of every key and list item."""

    file: Path
    data: Any
    line: int
    lines: dict[KeyPath, int]

    def line_of(self, path: KeyPath) -> int:
        """The line of `path`, or of the nearest enclosing key that was written."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return self.line

    def error(self, path: KeyPath, message: str) -> FileError:
        return FileError(self.file, message, self.line_of(path), path)


def read_documents(file: Path) -> list[Document]:
    """The documents of a YAML file; FileError (one line, no traceback) when the file cannot
    be read, is not YAML, or writes a key twice in one mapping."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileError(file, "no such file") from None
    except IsADirectoryError:
        raise FileError(file, "is a folder, not a YAML file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise FileError(file, f"cannot be read: {error}") from None
    try:
        return list(_documents(file, text))
    except FileError:
        raise
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 0
        context = error.context or ""
        if context and error.context_mark and error.context_mark.line + 1 != line:
            context += f" (from line {error.context_mark.line + 1})"
        reason = ", ".join(part for part in (context, error.problem) if part)
        raise FileError(file, f"is not valid YAML: {reason}", line) from None
    except (yaml.YAMLError, ValueError) as error:
        raise FileError(file, f"is not valid YAML: {error}") from None


def _documents(file: Path, text: str) -> Iterator[Document]:
    loader = MarketerYamlLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            lines: dict[KeyPath, int] = {}
            _record_lines(loader, file, node, (), lines)
            data = loader.construct_document(node)
            yield Document(file, data, node.start_mark.line + 1, lines)
    finally:
        loader.dispose()


def _record_lines(
    loader: MarketerYamlLoader,
    file: Path,
    node: yaml.Node,
    path: KeyPath,
    lines: dict[KeyPath, int],
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults`: its entries are found where the anchor wrote them
            key = str(loader.construct_object(key_node, deep=True))
            here = (*path, key)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise FileError(file, "is written twice in one mapping", line, here)
            seen.add(key)
            lines[here] = line
            _record_lines(loader, file, value_node, here, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _record_lines(loader, file, item, (*path, index), lines)


def check_keys(document: Document, data: Any, path: KeyPath, allowed: Sequence[str]) -> None:
    """Refuse a key that is not one of `allowed`, naming the closest allowed one."""
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean `{close[0]}`?" if close else "known: " + ", ".join(allowed)
            raise document.error((*path, str(key)), f"is not a field here; {hint}")
