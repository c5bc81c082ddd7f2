"""How many BLAS/OpenMP threads a worker process lets each of its jobs use.

Every job's matrix products run in the process's BLAS (numpy's and scipy's
OpenBLAS) and OpenMP pools, whose size is one number per process, and by default
each pool is as large as the host has cores. Jobs that run at the same time --
several jobs of one worker (``--concurrency``, threads of one process) or several
worker processes on one host -- would then start cores x jobs threads that fight
for the same cores. The rule, applied when a worker process starts (and in each
thread that runs a job, for OpenMP, whose limit is per thread):

    threads per BLAS call = BACKPROP_BLAS_THREADS if set,
                            else max(1, cores // concurrency)

where ``cores`` are the cores this process may run on (its CPU affinity) and
``concurrency`` the jobs it runs at once. With the threads pool a process's jobs
share its one BLAS pool, so the limit is per call: N jobs each calling BLAS use
at most N x limit <= cores threads. Several worker processes on one host divide
the cores by ``backprop worker --processes P``, which gives each of its P
processes max(1, cores // (P x concurrency)) threads through
``BACKPROP_BLAS_THREADS``; set that variable yourself when you start the
processes some other way (one per container, systemd units).
"""

from __future__ import annotations

import logging
import os
import threading

# threadpoolctl ships no type information (no py.typed)
from threadpoolctl import (  # type: ignore[import-untyped]
    ThreadpoolController,
    threadpool_info,
)

log = logging.getLogger(__name__)

# Read by OpenBLAS, OpenMP and MKL when they are loaded: a library a job loads
# later (after the limit is set on those loaded now) starts with the same size.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def host_cores() -> int:
    """The cores this process may run on (its affinity: taskset, cpusets)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_call(cores: int, jobs_at_once: int, explicit: int | None = None) -> int:
    """The rule above: the explicit setting, else the cores divided among the jobs."""
    if explicit is not None:
        return explicit
    return max(1, cores // max(1, jobs_at_once))


def pools() -> str:
    """The thread pools' sizes as the calling thread sees them: ``openblas=1, openmp=1``."""
    seen = {f"{pool['internal_api']}={pool['num_threads']}" for pool in threadpool_info()}
    return ", ".join(sorted(seen)) or "none loaded"


class ThreadLimit:
    """One worker process's limit, applied to the whole process at start and again in
    each thread that runs a job.

    OpenBLAS keeps one thread count per process, but OpenMP keeps one per thread:
    a job thread the limit was not applied in would start OpenMP regions (scikit-learn's,
    scipy's) as wide as the host.
    """

    def __init__(self, concurrency: int, explicit: int | None) -> None:
        self.cores = host_cores()
        self.concurrency = concurrency
        self.explicit = explicit
        self.threads = threads_per_call(self.cores, concurrency, explicit)
        self._controller: ThreadpoolController | None = None
        self._applied = threading.local()

    def start(self) -> None:
        """Limit the process's pools (now and for libraries loaded later); log it once."""
        for name in THREAD_VARIABLES:
            os.environ[name] = str(self.threads)
        self._controller = ThreadpoolController()
        self.in_this_thread()
        log.info(
            "worker: BLAS threads per call %s (%s; %s cores, concurrency %s); pools: %s",
            self.threads,
            "BACKPROP_BLAS_THREADS" if self.explicit is not None else "cores // concurrency",
            self.cores,
            self.concurrency,
            pools(),
        )

    def in_this_thread(self) -> None:
        """Apply the limit in the calling thread (a job's), logging the first time."""
        if self._controller is None or getattr(self._applied, "done", False):
            return
        # Not used as a context manager: the limit stays for the thread's life.
        self._controller.limit(limits=self.threads)
        self._applied.done = True
        if threading.current_thread() is not threading.main_thread():
            log.info(
                "worker: job thread limited to %s BLAS threads; pools: %s", self.threads, pools()
            )
