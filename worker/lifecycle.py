"""What a worker process does around its tasks, from start to stop.

Attached to the Celery app as a worker bootstep, so it runs only in a worker
(never in the API, which builds the same app to send messages): on start it
limits the process's BLAS threads (see :mod:`worker.threads`), binds the store to
the database and starts the reconciler; on a stop signal it tells the running
jobs to give themselves back.

Celery's warm shutdown (SIGTERM, or the first Ctrl-C) stops consuming and then
waits for running tasks; by itself it never tells a task. ``worker_shutting_down``
is sent from the signal handler in the worker's main process, where the threads
pool runs the tasks, so ``stopping`` is set the moment the signal arrives.
"""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery, bootsteps
from celery.signals import task_prerun, worker_shutting_down

from store import connect
from store.settings import Settings

from .evaluation import sklearn_metrics
from .reconciler import Reconciler
from .threads import ThreadLimit


class Lifecycle:
    """One worker's start-up and stop; ``stopping`` is set once it is told to stop."""

    def __init__(self, settings: Settings, app: Celery) -> None:
        self.settings = settings
        self.app = app
        self.stopping = threading.Event()
        self.reconciler: Reconciler | None = None
        # This process's BLAS threads per call, once started.
        self.threads: ThreadLimit | None = None

    def start(self, concurrency: int = 1) -> None:
        """Start in a worker process that runs ``concurrency`` jobs at once."""
        # Now, not in the first job that scores held-out rows; and first, since the
        # OpenMP runtime scikit-learn loads is one of the thread pools limited below.
        sklearn_metrics()
        self.threads = ThreadLimit(concurrency, self.settings.blas_threads)
        self.threads.start()
        connect(self.settings)
        worker_shutting_down.connect(self._on_stop_signal, weak=False)
        # Sent in the thread that runs the task, just before it.
        task_prerun.connect(self._before_task, weak=False)
        self.reconciler = Reconciler(self.settings, self.app)
        self.reconciler.start()

    def stop(self) -> None:
        # Also reached without a signal (a programmatic stop); before the pool waits.
        self.stopping.set()
        worker_shutting_down.disconnect(self._on_stop_signal)
        task_prerun.disconnect(self._before_task)
        if self.reconciler is not None:
            self.reconciler.stop()

    def _on_stop_signal(self, **_: Any) -> None:
        self.stopping.set()

    def _before_task(self, **_: Any) -> None:
        if self.threads is not None:
            self.threads.in_this_thread()

    def bootstep(self) -> type[bootsteps.StartStopStep]:
        """A worker bootstep that starts and stops this lifecycle."""
        lifecycle = self

        class LifecycleStep(bootsteps.StartStopStep):  # type: ignore[misc]  # Celery is untyped
            name = "backprop.lifecycle"
            # Started after the pool, so stopped before it: ``stopping`` is set
            # before the pool waits for the running tasks.
            requires = ("celery.worker.components:Pool",)

            def create(self, worker: Any) -> Lifecycle:
                return lifecycle

            def start(self, worker: Any) -> None:
                # The pool's size: how many jobs this process runs at once.
                lifecycle.start(int(worker.concurrency or 1))

        return LifecycleStep
