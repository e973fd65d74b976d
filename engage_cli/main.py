"""The `engage` command.

`engage up` runs the whole suite on this machine: nats-server with JetStream, the five services
as separate processes on SQLite, and an SMTP sink that keeps what it receives; Ctrl-C stops it
all. `engage demo` plays one customer's event through every service and prints what happened.
`engage apply` creates or updates segments from YAML files (`--dry-run` shows the diff first);
`engage export segments` writes the live segments back as such files, `engage export members`
a segment's members as CSV. `engage get segments`, `engage describe segment ID` and `engage get
profile USER_ID` read back what is live: tables for people, `-o json` / `-o yaml` for scripts.

The client commands reach the segments process of the suite `engage up` runs on `--var-dir`
(else its usual port), or `--address`, with an API key (`--api-key`, `ENGAGE_API_KEY`) in a
workspace (`--workspace`, `ENGAGE_WORKSPACE`). Exit status: 0 done, 1 the service refused or
could not be reached, 2 a file or an argument is wrong.
"""

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import grpc
import typer

from engage.settings import DEVELOPMENT_API_KEY
from engage_cli import output
from engage_cli.client import Client
from engage_cli.launcher import local_suite, running_address, running_suite
from engage_cli.output import Format

T = TypeVar("T")

app = typer.Typer(
    help="Engage on this machine, and segments as code.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
get_app = typer.Typer(help="List live resources.", no_args_is_help=True)
describe_app = typer.Typer(help="Show one live resource in full.", no_args_is_help=True)
export_app = typer.Typer(help="Write live resources out as files.", no_args_is_help=True)
app.add_typer(get_app, name="get")
app.add_typer(describe_app, name="describe")
app.add_typer(export_app, name="export")

VarDir = Annotated[Path, typer.Option(help="The suite's state folder.")]
Address = Annotated[
    str | None,
    typer.Option(help="SegmentService address (default: the running suite's).", show_default=False),
]
SchedulerAddress = Annotated[
    str | None,
    typer.Option(
        help="JourneyService and CampaignService address (default: the running suite's).",
        show_default=False,
    ),
]
ApiKey = Annotated[str, typer.Option(envvar="ENGAGE_API_KEY", help="An API key.")]
Workspace = Annotated[str, typer.Option(envvar="ENGAGE_WORKSPACE", help="The workspace.")]
Output = Annotated[Format, typer.Option("--output", "-o", help="table, json or yaml.")]


def main(argv: list[str] | None = None) -> int:
    try:
        app(args=argv, prog_name="engage")
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
    return 0


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="Play the demo once everything is up.")] = False,
    var_dir: VarDir = Path("var"),
) -> None:
    """Run the suite here until Ctrl-C."""
    var_dir = var_dir.resolve()
    stop = _stop_on_signals()
    with local_suite(var_dir) as addresses:
        print("Engage is up:")
        for name, address in addresses.items():
            print(f"  {name:<10} {address}")
        print(f"  API key    {DEVELOPMENT_API_KEY} (workspace demo, admin)")
        print(f"  mail kept  {var_dir / 'mail'}")
        print(f"  logs       {var_dir / 'run'}")
        if demo:
            _play(addresses, var_dir)
        print("Ctrl-C stops everything.", flush=True)
        stop.wait()
    print("Engage stopped.")


@app.command("demo")
def run_demo(var_dir: VarDir = Path("var")) -> None:
    """Play the demo on the running suite, or on a fresh one."""
    var_dir = var_dir.resolve()
    addresses = running_suite(var_dir)
    if addresses is not None:
        raise typer.Exit(_play(addresses, var_dir))
    with local_suite(var_dir) as started:
        raise typer.Exit(_play(started, var_dir))


@app.command()
def apply(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Segment, journey and campaign YAML files, or folders of them.", metavar="FILE"
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option(help="Show what would change, as a diff; change nothing.")
    ] = False,
    address: Address = None,
    scheduler_address: SchedulerAddress = None,
    api_key: ApiKey = DEVELOPMENT_API_KEY,
    workspace: Workspace = "demo",
    var_dir: VarDir = Path("var"),
) -> None:
    """Create or update segments, journeys and campaigns from YAML files; an unchanged file
    changes nothing."""
    from engage_cli.apply import Applied, apply_segments, read_files
    from engage_cli.definitions import AppliedDefinition, apply_definitions

    client = _client(address, api_key, workspace, var_dir, scheduler_address)

    async def run() -> None:
        segment_files, definitions = read_files(_yaml_files(files), workspace)
        # On a terminal the line printed per file is the progress; a bar would garble them.
        bar_wanted = not sys.stdout.isatty()
        total = len(segment_files) + len(definitions)
        with output.progress("applying", total, enabled=bar_wanted) as bar:
            done = 0

            def report(result: Applied | AppliedDefinition) -> None:
                nonlocal done
                done += 1
                if isinstance(result, Applied):
                    output.applied(result, dry_run)
                else:
                    output.applied_definition(result, dry_run)
                output.advance(bar, done)

            await apply_segments(segment_files, client, dry_run, report)
            # After the segments: a journey or campaign may name one just created.
            await apply_definitions(definitions, client, dry_run, report)

    _run("apply", run)


@export_app.command("segments")
def export_segments(
    ids: Annotated[list[str] | None, typer.Argument(help="Segment ids (default: all).")] = None,
    folder: Annotated[
        Path | None, typer.Option("--dir", help="Write <id>.yaml files here (default: print).")
    ] = None,
    address: Address = None,
    api_key: ApiKey = DEVELOPMENT_API_KEY,
    workspace: Workspace = "demo",
    var_dir: VarDir = Path("var"),
) -> None:
    """Write live segments as the YAML files `engage apply` reads."""
    from engage_cli.export import fetch_segments, segment_yaml, write_segment_files

    client = _client(address, api_key, workspace, var_dir)
    segments = _run("export", lambda: fetch_segments(client, ids or ()))
    if folder is None:
        print("---\n".join(segment_yaml(segment) for segment in segments), end="")
        return
    for path in write_segment_files(segments, folder):
        print(f"wrote {path}")


@export_app.command("members")
def export_members(
    segment_id: Annotated[str, typer.Argument(help="The segment's id.")],
    to: Annotated[
        Path | None, typer.Option("--to", help="Write the CSV here (default: print).")
    ] = None,
    address: Address = None,
    api_key: ApiKey = DEVELOPMENT_API_KEY,
    workspace: Workspace = "demo",
    var_dir: VarDir = Path("var"),
) -> None:
    """Write a segment's members as CSV: profile, user_id, email."""
    from engage_cli import export

    client = _client(address, api_key, workspace, var_dir)

    with (
        open(to, "w", newline="", encoding="utf-8") if to else nullcontext(sys.stdout) as out,
        output.progress(f"exporting {segment_id}", None, enabled=to is not None) as bar,
    ):
        written = _run(
            "export",
            lambda: export.export_members(
                client, segment_id, out, lambda done, total: output.advance(bar, done, total)
            ),
        )
    if to is not None:
        print(f"wrote {written} members to {to}")


@get_app.command("segments")
def get_segments(
    output_format: Output = Format.table,
    address: Address = None,
    api_key: ApiKey = DEVELOPMENT_API_KEY,
    workspace: Workspace = "demo",
    var_dir: VarDir = Path("var"),
) -> None:
    """List the workspace's segments: id, name, version, members, last update."""
    from engage_cli.show import segment_records

    client = _client(address, api_key, workspace, var_dir)
    rows = _run("get", lambda: segment_records(client))
    if output_format is Format.table:
        output.segments_table(rows)
    else:
        output.records(rows, output_format)


@get_app.command("profile")
def get_profile(
    key: Annotated[str, typer.Argument(help="The profile's user id (or what --by says).")],
    by: Annotated[
        str, typer.Option(help="What KEY is: user_id, anonymous_id, email or profile (its id).")
    ] = "user_id",
    output_format: Output = Format.table,
    address: Address = None,
    api_key: ApiKey = DEVELOPMENT_API_KEY,
    workspace: Workspace = "demo",
    var_dir: VarDir = Path("var"),
) -> None:
    """Show a profile: identities, traits, the segments it is in, its latest events."""
    from engage_cli.show import PROFILE_KEYS, profile_record

    if by not in PROFILE_KEYS:
        _fail("get", f"--by: must be one of {', '.join(PROFILE_KEYS)}", 2)
    client = _client(address, api_key, workspace, var_dir)
    record = _run("get", lambda: profile_record(client, by, key))
    if output_format is Format.table:
        output.profile_view(record)
    else:
        output.records(record, output_format)


@describe_app.command("segment")
def describe_segment(
    segment_id: Annotated[str, typer.Argument(help="The segment's id.")],
    output_format: Output = Format.table,
    address: Address = None,
    api_key: ApiKey = DEVELOPMENT_API_KEY,
    workspace: Workspace = "demo",
    var_dir: VarDir = Path("var"),
) -> None:
    """Show a segment: its definition, version, member count and a sample of members."""
    from engage_cli import show

    client = _client(address, api_key, workspace, var_dir)
    record = _run("describe", lambda: show.describe_segment(client, segment_id))
    if output_format is Format.table:
        output.segment_view(record)
    else:
        output.records(record, output_format)


@get_app.command("journeys")
def get_journeys(
    output_format: Output = Format.table,
    scheduler_address: SchedulerAddress = None,
    api_key: ApiKey = DEVELOPMENT_API_KEY,
    workspace: Workspace = "demo",
    var_dir: VarDir = Path("var"),
) -> None:
    """List the workspace's journeys: id, name, state, version, last update."""
    from engage_cli.show import journey_records

    client = _client(None, api_key, workspace, var_dir, scheduler_address)
    _show("get", lambda: journey_records(client), output_format, output.definitions_table)


@get_app.command("campaigns")
def get_campaigns(
    output_format: Output = Format.table,
    scheduler_address: SchedulerAddress = None,
    api_key: ApiKey = DEVELOPMENT_API_KEY,
    workspace: Workspace = "demo",
    var_dir: VarDir = Path("var"),
) -> None:
    """List the workspace's campaigns: id, name, state, last update."""
    from engage_cli.show import campaign_records

    client = _client(None, api_key, workspace, var_dir, scheduler_address)
    _show("get", lambda: campaign_records(client), output_format, output.definitions_table)


@describe_app.command("journey")
def describe_journey(
    journey_id: Annotated[str, typer.Argument(help="The journey's id.")],
    output_format: Output = Format.table,
    scheduler_address: SchedulerAddress = None,
    api_key: ApiKey = DEVELOPMENT_API_KEY,
    workspace: Workspace = "demo",
    var_dir: VarDir = Path("var"),
) -> None:
    """Show a journey: its graph as its file would write it, and its enrollments by step."""
    from engage_cli import show

    client = _client(None, api_key, workspace, var_dir, scheduler_address)
    work = lambda: show.describe_journey(client, journey_id)  # noqa: E731
    _show("describe", work, output_format, output.definition_view)


@describe_app.command("campaign")
def describe_campaign(
    campaign_id: Annotated[str, typer.Argument(help="The campaign's id.")],
    output_format: Output = Format.table,
    scheduler_address: SchedulerAddress = None,
    api_key: ApiKey = DEVELOPMENT_API_KEY,
    workspace: Workspace = "demo",
    var_dir: VarDir = Path("var"),
) -> None:
    """Show a campaign: its definition and how far its broadcast has come."""
    from engage_cli import show

    client = _client(None, api_key, workspace, var_dir, scheduler_address)
    work = lambda: show.describe_campaign(client, campaign_id)  # noqa: E731
    _show("describe", work, output_format, output.definition_view)


def _show(
    command: str,
    work: Callable[[], Awaitable[Any]],
    output_format: Format,
    table: Callable[[Any], None],
) -> None:
    shown = _run(command, work)
    if output_format is Format.table:
        table(shown)
    else:
        output.records(shown, output_format)


def _client(
    address: str | None,
    api_key: str,
    workspace: str,
    var_dir: Path,
    scheduler_address: str | None = None,
) -> Client:
    folder = var_dir.resolve()
    return Client(
        address or running_address(folder, "segments"),
        api_key,
        workspace,
        scheduler_address or running_address(folder, "scheduler"),
    )


def _run(command: str, work: Callable[[], Awaitable[T]]) -> T:
    """Run a client command's work; a refusal is one line on stderr and an exit status."""
    from engage_cli.documents import FileError

    try:
        return asyncio.run(_awaited(work))
    except (FileError, ValueError) as error:
        _fail(command, str(error), 2)
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.UNAVAILABLE:
            _fail(command, f"UNAVAILABLE: cannot reach the suite ({error.details()})", 1)
        _fail(command, f"{error.code().name}: {error.details()}", 1)


async def _awaited(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


def _fail(command: str, message: str, status: int) -> NoReturn:
    print(f"engage {command}: {message}", file=sys.stderr)
    raise typer.Exit(status)


def _yaml_files(paths: list[Path]) -> list[Path]:
    """The files named, a folder standing for its *.yaml and *.yml files (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        else:
            found.append(path)
    return found


def _play(addresses: dict[str, str], var_dir: Path) -> int:
    from engage_cli.demo import play

    ok = asyncio.run(play(addresses, DEVELOPMENT_API_KEY, var_dir / "mail"))
    return 0 if ok else 1


class _StopEvent:
    def __init__(self) -> None:
        self.stopped = False

    def set(self, *_: object) -> None:
        self.stopped = True

    def wait(self) -> None:
        while not self.stopped:
            signal.pause()


def _stop_on_signals() -> _StopEvent:
    """SIGINT and SIGTERM ask to stop; whatever has started is then stopped in order."""
    stop = _StopEvent()
    signal.signal(signal.SIGINT, stop.set)
    signal.signal(signal.SIGTERM, stop.set)
    return stop


if __name__ == "__main__":
    sys.exit(main())
