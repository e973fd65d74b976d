"""Work done every so often in a service (fire due timers, go on with broadcasts, sweep timed
segments): one loop, so each such worker fails, waits and wakes the same way."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def poll_forever(
    work: Callable[[], Awaitable[bool | object]],
    interval_seconds: float,
    what: str,
    wake: asyncio.Event | None = None,
) -> None:
    """Run `work` again at once while it returns True (more to do now), then wait
    `interval_seconds` or until `wake` is set; forever, until cancelled. A failure is logged
    and tried again after the interval."""
    while True:
        if wake is not None:
            wake.clear()
        try:
            while await work() is True:
                pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; retrying at the next interval", what)
        if wake is None:
            await asyncio.sleep(interval_seconds)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), interval_seconds)
