"""What the CLI prints: tables for people, JSON or YAML for scripts, what apply did (a unified
diff of the YAML for a change in a dry run), and progress bars on a terminal for long work."""

import difflib
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from engage_cli.apply import Applied
from engage_cli.definitions import AppliedDefinition, written_form
from engage_cli.export import segment_yaml
from engage_cli.rules_yaml import dump
from engage_cli.show import compact


class Format(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


def console(stderr: bool = False) -> Console:
    """A console that never reads text as markup; wide when piped, so rows stay one line."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(
        file=stream, highlight=False, width=None if stream.isatty() else 200, markup=False
    )


def records(data: Any, output: Format) -> None:
    """`data` for a script: JSON (UTF-8, indented) or YAML."""
    if output is Format.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print(dump(data), end="")


def segments_table(rows: Sequence[dict[str, Any]]) -> None:
    table = _table("SEGMENT", "NAME", "VERSION", "MEMBERS", "UPDATED")
    for row in rows:
        table.add_row(
            *_cells(
                row["segment_id"],
                row["display_name"],
                row["version"],
                row["member_count"],
                row["update_time"],
            )
        )
    console().print(table)


def segment_view(record: dict[str, Any]) -> None:
    out = console()
    keys = ("segment_id", "display_name", "description", "version", "member_count", "update_time")
    out.print(_fields(record, keys))
    out.print(Text("rule:", style="bold"))
    out.print(_yaml(dump(record["rule"])))
    shown = len(record["sample"])
    out.print(Text(f"sample: {shown} of {record['member_count']} members", style="bold"))
    if shown:
        table = _table("PROFILE", "USER ID", "EMAIL")
        for member in record["sample"]:
            table.add_row(*_cells(member["profile"], member["user_id"], member["email"]))
        out.print(table)


def profile_view(record: dict[str, Any]) -> None:
    out = console()
    keys = ("profile", "user_id", "anonymous_ids", "time_zone", "locale", "first_seen", "last_seen")
    out.print(_fields(record, keys))
    traits = _table("TRAIT", "VALUE", title="traits")
    for key, value in record["traits"].items():
        traits.add_row(*_cells(key, value if isinstance(value, str) else compact(value)))
    memberships = _table("SEGMENT", "ENTERED", title="segments")
    for membership in record["memberships"]:
        memberships.add_row(*_cells(membership["segment"], membership["entered"]))
    events = _table("TIME", "TYPE", "EVENT", "PROPERTIES", title="recent events")
    for event in record["recent_events"]:
        properties = compact(event["properties"]) if event["properties"] else ""
        events.add_row(*_cells(event["time"], event["type"], event["event"], properties))
    for table in (traits, memberships, events):
        out.print(table if table.row_count else Text(f"{table.title}: none", style="bold"))


def applied(result: Applied, dry_run: bool) -> None:
    """One line per file; in a dry run, a changed segment's YAML as a unified diff."""
    after = result.after
    source = f"({result.file.document.file})"
    if not dry_run:
        print(f"{result.verb} {after.name} v{after.version}: {after.member_count} members {source}")
        return
    if result.verb == "unchanged":
        print(f"unchanged {after.name} v{after.version} {source}")
        return
    members = f": {after.member_count} members" if result.validated else ""
    if result.before is None:
        print(f"would create {after.name}{members} {source}")
        return
    print(
        f"would update {after.name} v{result.before.version} → v{after.version}{members} {source}"
    )
    diff = "".join(
        difflib.unified_diff(
            segment_yaml(result.before).splitlines(keepends=True),
            segment_yaml(after).splitlines(keepends=True),
            f"{after.name} v{result.before.version} (live)",
            str(result.file.document.file),
        )
    )
    out = console()
    if out.is_terminal:
        out.print(Syntax(diff, "diff", background_color="default"))
    else:
        print(diff, end="")


def definitions_table(rows: Sequence[dict[str, Any]]) -> None:
    """Journeys or campaigns, one a line."""
    table = _table("ID", "NAME", "STATE", "VERSION", "UPDATED")
    for row in rows:
        table.add_row(
            *_cells(
                row["id"],
                row["display_name"],
                row["state"],
                row.get("version", ""),
                row["update_time"],
            )
        )
    console().print(table)


def definition_view(record: dict[str, Any]) -> None:
    """A journey or campaign: its fields, its definition as YAML, then its counts or progress."""
    out = console()
    out.print(_fields(record, ("id", "display_name", "state", "version", "update_time")))
    out.print(Text("definition:", style="bold"))
    out.print(_yaml(dump(record["definition"])))
    for part in ("counts", "progress"):
        if part in record:
            out.print(Text(f"{part}:", style="bold"))
            out.print(_yaml(dump(record[part])))


def applied_definition(result: AppliedDefinition, dry_run: bool) -> None:
    """One line per journey or campaign; in a dry run, a change as a unified diff of its
    fields."""
    after, source = result.after, f"({result.definition.document.file})"
    name = getattr(after, "name", "")
    if not dry_run or result.verb == "unchanged":
        print(f"{result.verb} {name} {source}")
        return
    if result.before is None:
        print(f"would create {name} {source}")
        return
    print(f"would update {name} {source}")
    before_text = dump(written_form(result.before))
    after_text = dump(written_form(after))
    diff = "".join(
        difflib.unified_diff(
            before_text.splitlines(keepends=True),
            after_text.splitlines(keepends=True),
            f"{name} (live)",
            str(result.definition.document.file),
        )
    )
    print(diff, end="")


@contextmanager
def progress(
    description: str, total: int | None, enabled: bool = True
) -> Iterator[Progress | None]:
    """A progress bar on stderr while long work runs (`total` steps, None while unknown), when
    stderr is a terminal."""
    err = console(stderr=True)
    if not (enabled and err.is_terminal) or total == 1:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    # stdout is left alone: it holds the command's output, often redirected to a file.
    with Progress(*columns, console=err, transient=True, redirect_stdout=False) as bar:
        bar.add_task(description, total=total)
        yield bar


def advance(bar: Progress | None, completed: int, total: int | None = None) -> None:
    if bar is not None:
        bar.update(TaskID(0), completed=completed, total=total)


def _table(*columns: str, title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", box=None, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _cells(*values: object) -> list[Text]:
    return [Text(str(value)) for value in values]


def _fields(record: dict[str, Any], keys: Sequence[str]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key in keys:
        value = record[key]
        shown = ", ".join(value) if isinstance(value, list) else str(value)
        grid.add_row(*_cells(f"{key}:", shown))
    return grid


def _yaml(text: str) -> Syntax | Text:
    if console().is_terminal:
        return Syntax(text, "yaml", background_color="default")
    return Text(text.rstrip("\n"))
