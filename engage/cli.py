"""The `engage` command.

`engage up` runs the whole suite on this machine: nats-server with JetStream, the five services
as separate processes on SQLite, and an SMTP sink that keeps what it receives; Ctrl-C stops it
all. `engage demo` plays one customer's event through every service and prints what happened.
"""

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc

from engage.processes import SERVICES, LocalSuite, NatsServer, port_or_free
from engage.settings import DEVELOPMENT_API_KEY

DEFAULT_PORTS = {"nats": 4322, "smtp": 2525, "ingest-http": 8088} | {
    name: 50051 + index for index, name in enumerate(SERVICES)
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="engage", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run the suite here until Ctrl-C")
    up.add_argument("--demo", action="store_true", help="play the demo once everything is up")
    demo = commands.add_parser("demo", help="play the demo on the running suite, or a fresh one")
    apply = commands.add_parser("apply", help="create or update segments from YAML files")
    apply.add_argument("files", type=Path, nargs="+", help="segment YAML files")
    apply.add_argument("--address", help="SegmentService address (default: the running suite)")
    apply.add_argument("--api-key", default=DEVELOPMENT_API_KEY, help="a marketer or admin key")
    apply.add_argument("--workspace", default="demo")
    for command in (up, demo, apply):
        command.add_argument("--var-dir", type=Path, default=Path("var"), help="state folder")
    args = parser.parse_args(argv)
    if args.command == "up":
        return run_up(args.var_dir.resolve(), play_demo=args.demo)
    if args.command == "apply":
        return run_apply(args)
    return run_demo(args.var_dir.resolve())


def run_apply(args: argparse.Namespace) -> int:
    from engage.apply import apply_segments

    address = args.address or _running_address(args.var_dir.resolve(), "segments")
    try:
        lines = asyncio.run(apply_segments(args.files, address, args.api_key, args.workspace))
    except ValueError as error:
        print(f"engage apply: {error}", file=sys.stderr)
        return 2
    except grpc.aio.AioRpcError as error:
        print(f"engage apply: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def _running_address(var_dir: Path, service: str) -> str:
    suite_file = var_dir / "run" / "suite.json"
    if suite_file.exists():
        return str(json.loads(suite_file.read_text())[service])
    return f"127.0.0.1:{DEFAULT_PORTS[service]}"


@contextlib.contextmanager
def local_suite(var_dir: Path) -> Iterator[dict[str, str]]:
    """Start nats-server, the SMTP sink and the five services; stop them all on exit."""
    from services.channels.sandboxes.smtp_sink import SmtpSink

    run_dir = var_dir / "run"
    nats = NatsServer(var_dir / "nats", port_or_free(DEFAULT_PORTS["nats"]), run_dir / "nats.log")
    sink = SmtpSink(var_dir / "mail", port_or_free(DEFAULT_PORTS["smtp"]))
    suite = PortedSuite(run_dir, nats.url, var_dir, sink.port)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        nats.start()
        sink.start()
        suite.start_all()
        addresses = {name: suite.address(name) for name in SERVICES}
        addresses["ingest-http"] = f"http://{suite.processes['ingest'].http_address}"
        addresses |= {"nats": nats.url, "smtp": f"127.0.0.1:{sink.port}"}
        (run_dir / "suite.json").write_text(json.dumps(addresses))
        yield addresses
    finally:
        (run_dir / "suite.json").unlink(missing_ok=True)
        suite.stop_all()
        sink.stop()
        nats.stop()


class PortedSuite(LocalSuite):
    """The laptop suite: each service on its usual port (or a free one), SQLite under var/."""

    def __init__(self, run_dir: Path, nats_url: str, var_dir: Path, smtp_port: int) -> None:
        super().__init__(
            run_dir,
            {
                "ENGAGE_NATS_URL": nats_url,
                "ENGAGE_VAR_DIR": str(var_dir),
                "ENGAGE_SMTP_PORT": str(smtp_port),
            },
        )

    def service_env(self, name: str) -> dict[str, str]:
        env = {"ENGAGE_GRPC_PORT": str(port_or_free(DEFAULT_PORTS[name]))}
        if name == "ingest":
            env["ENGAGE_HTTP_PORT"] = str(port_or_free(DEFAULT_PORTS["ingest-http"]))
        return env


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
    suite_file = var_dir / "run" / "suite.json"
    if suite_file.exists():
        return _play(json.loads(suite_file.read_text()), var_dir)
    with local_suite(var_dir) as addresses:
        return _play(addresses, var_dir)


def _play(addresses: dict[str, str], var_dir: Path) -> int:
    from engage.demo import play

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
    stop = _StopEvent()
    signal.signal(signal.SIGINT, stop.set)
    signal.signal(signal.SIGTERM, stop.set)
    return stop


if __name__ == "__main__":
    sys.exit(main())
