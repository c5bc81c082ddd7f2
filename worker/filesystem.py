"""The filesystem broker's transport, made to notice a stop signal at once.

Celery's worker loop for a broker without an event hub (the filesystem broker)
waits for messages in calls of two seconds each, and on a warm shutdown it makes
one more such call after it has seen the stop: Ctrl-C on ``backprop up`` took two
to four seconds in that wait alone, with nothing to wait for. This transport
ends its wait at the next polling interval once the worker is told to stop (or
to terminate), and is otherwise kombu's own.
"""

from __future__ import annotations

from time import monotonic, sleep
from typing import Any

from celery.worker import state
from kombu.transport import filesystem
from kombu.transport.virtual import Empty


def _stopping() -> bool:
    # As celery.worker.state.maybe_shutdown reads them: a stop's exit code may be 0.
    return any(
        flag is not None and flag is not False
        for flag in (state.should_stop, state.should_terminate)
    )


class Transport(filesystem.Transport):
    # type: ignore: kombu's virtual transport narrows its base's signature so too.
    def drain_events(self, connection: Any, timeout: Any = None) -> Any:  # type: ignore[override]
        started = monotonic()
        assert self.cycle is not None  # set when the first channel opens
        while True:
            try:
                self.cycle.get(self._deliver, timeout=timeout)  # type: ignore[no-untyped-call]
                return
            except Empty:
                waited = monotonic() - started
                if _stopping() or (timeout is not None and waited >= timeout):
                    raise TimeoutError() from None
                sleep(self.polling_interval or 0)
