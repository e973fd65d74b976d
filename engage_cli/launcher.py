"""The suite on this machine, as `engage up` runs it: nats-server with JetStream, the SMTP sink
that keeps what it receives, and the five services, each its own process on SQLite under the
state folder, on their usual ports (or free ones).
"""

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from engage_cli.processes import SERVICES, ListeningProcess, LocalSuite, NatsServer, port_or_free

DEFAULT_PORTS = {"nats": 4322, "smtp": 2525, "ingest-http": 8088} | {
    name: 50051 + index for index, name in enumerate(SERVICES)
}
# Written while the suite runs, so that `engage demo` and `engage apply` find it.
SUITE_FILE = Path("run") / "suite.json"


class SmtpSinkProcess(ListeningProcess):
    """Channels' SMTP sandbox as its own process, keeping each email in `mail_dir`."""

    def __init__(self, mail_dir: Path, port: int, log_file: Path) -> None:
        module = "services.channels.sandboxes.smtp_sink"
        command = [sys.executable, "-m", module, "--port", str(port), "--mail-dir", str(mail_dir)]
        super().__init__(command, port, log_file)


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


@contextlib.contextmanager
def local_suite(var_dir: Path) -> Iterator[dict[str, str]]:
    """Start nats-server, the SMTP sink and the five services; stop them all on exit.

    Yields where each listens, by name (`ingest`, …, `ingest-http`, `nats`, `smtp`).
    """
    run_dir = var_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    nats = NatsServer(var_dir / "nats", port_or_free(DEFAULT_PORTS["nats"]), run_dir / "nats.log")
    sink = SmtpSinkProcess(
        var_dir / "mail", port_or_free(DEFAULT_PORTS["smtp"]), run_dir / "smtp.log"
    )
    suite = PortedSuite(run_dir, nats.url, var_dir, sink.port)
    try:
        nats.start()
        sink.start()
        suite.start_all()
        addresses = {name: suite.address(name) for name in SERVICES}
        addresses["ingest-http"] = f"http://{suite.processes['ingest'].http_address}"
        addresses |= {"nats": nats.url, "smtp": f"127.0.0.1:{sink.port}"}
        (var_dir / SUITE_FILE).write_text(json.dumps(addresses))
        yield addresses
    finally:
        (var_dir / SUITE_FILE).unlink(missing_ok=True)
        suite.stop_all()
        sink.stop()
        nats.stop()


def running_suite(var_dir: Path) -> dict[str, str] | None:
    """Where the suite that `engage up` runs on `var_dir` listens; None if none runs."""
    suite_file = var_dir / SUITE_FILE
    if not suite_file.exists():
        return None
    addresses: dict[str, str] = json.loads(suite_file.read_text())
    return addresses


def running_address(var_dir: Path, service: str) -> str:
    """`service`'s address in the running suite, else its usual port on this machine."""
    addresses = running_suite(var_dir)
    if addresses is not None:
        return addresses[service]
    return f"127.0.0.1:{DEFAULT_PORTS[service]}"
