"""The `engage` command.

`engage up` runs the whole suite on this machine: nats-server with JetStream, the five services
as separate processes on SQLite, and an SMTP sink that keeps what it receives; Ctrl-C stops it
all. `engage demo` plays one customer's event through every service and prints what happened.
`engage apply` creates or updates segments from YAML files; `engage export segments` writes the
live segments back as such files.
"""

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import grpc

from engage.settings import DEVELOPMENT_API_KEY
from engage_cli.launcher import local_suite, running_address, running_suite


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    var_dir: Path = args.var_dir.resolve()
    if args.command == "up":
        return run_up(var_dir, play_demo=args.demo)
    if args.command == "demo":
        return run_demo(var_dir)
    try:
        if args.command == "apply":
            return run_apply(args, var_dir)
        return run_export(args, var_dir)
    except ValueError as error:
        print(f"engage {args.command}: {error}", file=sys.stderr)
        return 2
    except grpc.aio.AioRpcError as error:
        print(f"engage {args.command}: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="engage", description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run the suite here until Ctrl-C")
    up.add_argument("--demo", action="store_true", help="play the demo once everything is up")
    demo = commands.add_parser("demo", help="play the demo on the running suite, or a fresh one")
    apply = commands.add_parser("apply", help="create or update segments from YAML files")
    apply.add_argument("files", type=Path, nargs="+", help="segment YAML files")
    export = commands.add_parser("export", help="write live resources as the YAML apply reads")
    export.add_argument("kind", choices=["segments"])
    export.add_argument("ids", nargs="*", help="segment ids (default: every segment)")
    export.add_argument("--dir", type=Path, help="write <id>.yaml files here (default: print)")
    for client in (apply, export):
        client.add_argument("--address", help="SegmentService address (default: running suite)")
        client.add_argument("--api-key", default=DEVELOPMENT_API_KEY, help="an API key")
        client.add_argument("--workspace", default="demo")
    for command in (up, demo, apply, export):
        command.add_argument("--var-dir", type=Path, default=Path("var"), help="state folder")
    return parser


def run_apply(args: argparse.Namespace, var_dir: Path) -> int:
    from engage_cli.apply import apply_segments

    address = args.address or running_address(var_dir, "segments")
    lines = asyncio.run(apply_segments(args.files, address, args.api_key, args.workspace))
    print("\n".join(lines))
    return 0


def run_export(args: argparse.Namespace, var_dir: Path) -> int:
    from engage_cli.export import fetch_segments, segment_yaml, write_segment_files

    address = args.address or running_address(var_dir, "segments")
    segments = asyncio.run(fetch_segments(address, args.api_key, args.workspace, args.ids))
    if args.dir is None:
        print("---\n".join(segment_yaml(segment) for segment in segments), end="")
        return 0
    for path in write_segment_files(segments, args.dir):
        print(f"wrote {path}")
    return 0


def run_up(var_dir: Path, play_demo: bool) -> int:
    stop = _stop_on_signals()
    with local_suite(var_dir) as addresses:
        print("Engage is up:")
        for name, address in addresses.items():
            print(f"  {name:<10} {address}")
        print(f"  API key    {DEVELOPMENT_API_KEY} (workspace demo, admin)")
        print(f"  mail kept  {var_dir / 'mail'}")
        print(f"  logs       {var_dir / 'run'}")
        if play_demo:
            _play(addresses, var_dir)
        print("Ctrl-C stops everything.", flush=True)
        stop.wait()
    print("Engage stopped.")
    return 0


def run_demo(var_dir: Path) -> int:
    addresses = running_suite(var_dir)
    if addresses is not None:
        return _play(addresses, var_dir)
    with local_suite(var_dir) as started:
        return _play(started, var_dir)


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
