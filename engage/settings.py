"""Settings from `ENGAGE_*` environment variables, with defaults that run on a laptop."""

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engage.clock import Clock, offset_clock, utc_now

DEVELOPMENT_API_KEY = "engage-dev-key"
# What services present to each other on a laptop: a platform key, for any workspace.
DEVELOPMENT_SERVICE_KEY = "engage-dev-service-key"


class Settings(BaseSettings):
    """What every service reads. Each service subclasses it with its own name and port."""

    model_config = SettingsConfigDict(env_prefix="ENGAGE_", extra="ignore")

    service_name: str = "engage"
    environment: Literal["development", "production"] = "development"
    var_dir: Path = Path("var")
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 0
    # Empty: SQLite (WAL) at `<var_dir>/<service_name>.db`.
    database_url: str = ""
    nats_url: str = "nats://127.0.0.1:4222"
    # `key=workspace:role+role,...`; roles are ingest, marketer, support, admin. Workspace `*`
    # makes a platform key, which names the workspace of each call in `x-engage-workspace`.
    api_keys: str = f"{DEVELOPMENT_API_KEY}=demo:admin,{DEVELOPMENT_SERVICE_KEY}=*:admin"
    # The key this service presents when it calls another service.
    service_api_key: str = DEVELOPMENT_SERVICE_KEY
    # Where the segments service's ProfileService answers (for the services that read profiles).
    profile_service_address: str = "127.0.0.1:50052"
    event_partitions: int = 8
    # How long JetStream remembers an event's message id to drop a repeat: at least a day, so a
    # client retrying after an outage is still deduped; at most the EVENTS stream's 7-day age.
    dedupe_window_hours: float = Field(default=24.0, ge=24.0, le=7 * 24.0)
    log_level: str = "INFO"
    # Where finished spans go: nowhere, or printed to stderr.
    trace_exporter: Literal["none", "console"] = "none"
    # Seconds between pings of the database and NATS that set gRPC health.
    health_period: float = Field(default=1.0, gt=0)
    # Seconds a stopping server lets in-flight calls finish.
    shutdown_grace: float = 10.0
    # Written with the bound address once the service is serving (for launchers and tests).
    ready_file: Path | None = None
    # Development only: a file of seconds by which this service's clock runs ahead of the wall
    # clock, so a demo or a test passes days in seconds (see `engage.clock.offset_clock`).
    clock_offset_file: Path | None = None

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> "Settings":
        development_keys = (DEVELOPMENT_API_KEY, DEVELOPMENT_SERVICE_KEY)
        if self.environment == "production" and any(
            key in self.api_keys or key == self.service_api_key for key in development_keys
        ):
            raise ValueError("a development API key is still configured in production")
        if self.environment == "production" and self.clock_offset_file is not None:
            raise ValueError("a clock offset file is for development only")
        return self

    def clock(self) -> Clock:
        """What this service reads the time from: the wall clock, unless an offset file moves it."""
        if self.clock_offset_file is None:
            return utc_now
        return offset_clock(self.clock_offset_file)

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to this service's SQLite file under `var_dir`."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.var_dir.resolve() / self.service_name}.db"
