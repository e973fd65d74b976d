"""Provider adapters: one module per provider, all behind one small interface.

An adapter hands one message to its provider and returns the provider's id for it. It tells a
failure worth retrying (`TransientSendError`: the provider did not take the message, so sending
again is safe) from one that will never succeed (`PermanentSendError`: address refused, message
rejected), and both from a handoff cut off midway (`UncertainSendError`): the provider may have
the message, so sending again could reach the person twice.
"""

from typing import Protocol, TypeVar

MessageT_contra = TypeVar("MessageT_contra", contravariant=True)


class SendError(Exception):
    """The provider did not accept the message; `reason` is short and free of personal data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientSendError(SendError):
    """Try again later: the provider was unreachable, busy or answered with a 4xx."""


class PermanentSendError(SendError):
    """Never retry: the provider refused this message or recipient for good."""


class UncertainSendError(SendError):
    """The message was being handed over when the connection failed or timed out: it may have
    been accepted. Never retry (a provider without an idempotency key would send it twice)."""


class ChannelAdapter(Protocol[MessageT_contra]):
    async def send(self, message: MessageT_contra) -> str:
        """Hand `message` to the provider; returns the provider's message id."""
        ...
