"""Who is calling: the workspace and roles of the API key of the call being served."""

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """The caller, as its API key says."""

    workspace: str
    roles: frozenset[str]


# Set by the call interceptor (engage/server.py) for the duration of each call.
current_principal: ContextVar[Principal] = ContextVar("current_principal")
