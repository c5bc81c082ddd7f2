"""One attempt at a job: the lease it holds and every write it makes.

The database owns the job's state. An attempt starts by taking the job's lease
(its attempt number is the fencing token) and makes every write -- epochs,
progress, checkpoints, the final model or output -- in a transaction that first
proves the lease is still its own. A worker that lost its lease stops without
writing anything more. A worker told to stop gives the job back at the next
epoch boundary: a checkpoint, then the job queued again, in one fenced
transaction.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from core import EpochStats, Trainer, TrainResult
from store import JobStatus, Session, storage
from store import queries as q
from store.settings import Settings

log = logging.getLogger(__name__)


class Attempt:
    """One attempt's bookkeeping: buffered epochs, checkpoints, lease renewals.

    Epochs are written every ``epoch_flush_seconds`` and a checkpoint every
    ``checkpoint_seconds``, each write renewing the lease and reading the
    cancel flag. A background thread renews the lease when epochs are too slow
    to do it, so a long epoch does not look like a dead worker.
    """

    def __init__(
        self,
        job_id: int,
        attempt: int,
        settings: Settings,
        should_give_back: Callable[[], bool] = lambda: False,
    ) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.settings = settings
        self.should_give_back = should_give_back
        self.trainer: Trainer | None = None
        # core.EpochStats as mappings of the epochs table's columns
        self.pending: list[dict[str, Any]] = []
        # a prediction job's rows predicted so far, written with the next write
        self.rows_done: int | None = None
        self.cancel = False
        self.lost = False
        self.given_back = False
        now = time.monotonic()
        self.last_write = now
        self.last_checkpoint = now
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, daemon=True)
        # the thread writing a checkpoint in the background, if one is
        self._writer: threading.Thread | None = None

    # --- called by the trainer -------------------------------------------------

    def on_epoch(self, stats: EpochStats) -> None:
        # The stats' fields as a mapping: vars() shares the frozen dataclass's own
        # dict, where asdict() deep-copies it (about 6 us, as much as a whole epoch
        # of a tiny network trained online).
        self.pending.append(vars(stats))
        now = time.monotonic()
        if self._writer is not None and self._writer.is_alive():
            if now - self.last_write < self.settings.epoch_flush_seconds:
                return  # a checkpoint is being written: keep buffering, in epoch order
            # Still being written a flush period on: wait for it. Epochs of a small
            # network would otherwise pile up faster than one write can record them,
            # and the cancel flag, read at each write, would be read ever later.
            self.settle()
            now = time.monotonic()
        if now - self.last_checkpoint >= self.settings.checkpoint_seconds:
            self.checkpoint_in_background()
        elif now - self.last_write >= self.settings.epoch_flush_seconds:
            self.write()

    def should_stop(self) -> bool:
        if not (self.cancel or self.lost) and self.should_give_back():
            # Between epochs, so the checkpoint resumes exactly.
            self.write(give_back=True)
            if self.given_back:
                log.info(
                    "job %s: attempt %s gave the job back at epoch %s (worker stopping)",
                    self.job_id,
                    self.attempt,
                    self.trainer.epoch if self.trainer else 0,
                    extra={"job_id": self.job_id},
                )
        return self.cancel or self.lost or self.given_back

    # --- writes ----------------------------------------------------------------

    def checkpoint_in_background(self) -> None:
        """Snapshot the trainer now, between epochs, and store and record the snapshot
        (with the epochs buffered so far) in a thread of its own, so that training
        goes on while a large network's checkpoint is uploaded. One write at a time:
        the next write of any kind waits for this one (:meth:`settle`)."""
        assert self.trainer is not None
        epoch, data, pending = self.trainer.epoch, self.trainer.checkpoint(), self.pending
        self.pending = []
        self.last_checkpoint = time.monotonic()
        self._writer = threading.Thread(
            target=self._commit,
            args=(pending, (epoch, data), False),
            name=f"backprop-checkpoint-{self.job_id}",
            daemon=True,
        )
        self._writer.start()

    def settle(self) -> None:
        """Wait for a checkpoint being written in the background."""
        if self._writer is not None:
            self._writer.join()
            self._writer = None

    def write(self, checkpoint: bool = False, give_back: bool = False) -> None:
        """Flush buffered epochs under the lease, and a checkpoint if asked, now.

        ``give_back`` also checkpoints and queues the job again (unless it was
        cancelled meanwhile: then it ends as cancelled); the caller sends the
        job's message again after this returns with ``given_back`` set.
        """
        self.settle()
        snapshot = None
        if (checkpoint or give_back) and self.trainer is not None:
            snapshot = (self.trainer.epoch, self.trainer.checkpoint())
            self.last_checkpoint = time.monotonic()
        pending, self.pending = self.pending, []
        self._commit(pending, snapshot, give_back)

    def _commit(
        self,
        pending: list[dict[str, Any]],
        snapshot: tuple[int, bytes] | None,
        give_back: bool,
    ) -> None:
        """One fenced transaction: the lease renewed, ``pending`` epochs recorded and
        the ``snapshot`` (epoch, checkpoint bytes) made the job's checkpoint."""
        with self._lock:
            replaced = None
            try:
                with ExitStack() as staged:
                    key = None
                    if snapshot is not None:
                        # Stored before the transaction that names it: a worker killed
                        # in between leaves the previous checkpoint in force.
                        key = staged.enter_context(
                            storage().stage(q.checkpoint_prefix(self.job_id), ".npz", snapshot[1])
                        )
                    with Session.begin() as session:
                        self.cancel = q.renew_lease(session, self.job_id, self.attempt)
                        q.record_epochs(session, self.job_id, pending)
                        if self.rows_done is not None:
                            q.record_progress(session, self.job_id, self.rows_done)
                        give_back = give_back and not self.cancel
                        if key is not None and snapshot is not None:
                            replaced = q.save_checkpoint(
                                session, self.job_id, self.attempt, snapshot[0], key
                            )
                        if give_back:
                            q.release_lease(session, self.job_id, self.attempt)
                self.given_back = give_back
                if replaced is not None:
                    storage().discard(replaced)
            except q.LeaseLost:
                log.warning(
                    "job %s: attempt %s lost its lease; stopping", self.job_id, self.attempt
                )
                self.lost = True
            except Exception:
                if threading.current_thread() is not self._writer:
                    raise
                # A background checkpoint that failed (storage or database down) is
                # only a checkpoint missed: its epochs go back to the buffer, and the
                # next write tries again.
                log.exception("job %s: writing a checkpoint failed", self.job_id)
                self.pending[:0] = pending
            self.last_write = time.monotonic()

    def _beat(self) -> None:
        interval = self.settings.lease_seconds / 3
        while not self._done.wait(interval):
            if self.given_back or time.monotonic() - self.last_write < interval:
                continue
            with self._lock:
                try:
                    with Session.begin() as session:
                        self.cancel = q.renew_lease(session, self.job_id, self.attempt)
                except q.LeaseLost:
                    self.lost = True
                    return
                self.last_write = time.monotonic()

    # --- the attempt ---------------------------------------------------------

    def train(self, trainer: Trainer) -> TrainResult:
        self.trainer = trainer
        with self.beating():
            return trainer.run(on_epoch=self.on_epoch, should_stop=self.should_stop)

    @contextmanager
    def beating(self) -> Iterator[None]:
        """The lease renewed in the background while the block runs."""
        self._heartbeat.start()
        try:
            yield
        finally:
            self.settle()
            self._done.set()
            self._heartbeat.join()

    def on_rows(self, rows_done: int) -> None:
        """A prediction job's progress; written as epochs are, every flush period."""
        self.rows_done = rows_done
        if time.monotonic() - self.last_write >= self.settings.epoch_flush_seconds:
            self.write()

    def finish(self, status: JobStatus, **fields: Any) -> bool:
        """Record the last epochs and the outcome in one fenced transaction; False when
        the lease was lost first (nothing was recorded).

        ``model`` (spec, summary, weights bytes, metrics) is stored first and
        recorded in the same transaction as the outcome; so is ``output`` (the
        file of a prediction job's outputs), whichever attempt writes it: only
        the one that still holds the lease records its key."""
        self.settle()
        model = fields.pop("model", None)
        output = fields.pop("output", None)
        unused = None
        try:
            with ExitStack() as staged:
                weights_key = output_key = None
                if model is not None:
                    spec, summary, weights, metrics = model
                    weights_key = staged.enter_context(storage().stage("models", ".npz", weights))
                if output is not None:
                    output_key = staged.enter_context(
                        storage().stage(
                            f"predictions/{self.job_id}", output.suffix, output, move=True
                        )
                    )
                with Session.begin() as session:
                    q.renew_lease(session, self.job_id, self.attempt)
                    q.record_epochs(session, self.job_id, self.pending)
                    if self.rows_done is not None:
                        q.record_progress(session, self.job_id, self.rows_done)
                    job = q.get_job(session, self.job_id)
                    assert job is not None
                    job.output_key = output_key or job.output_key
                    if weights_key is not None:
                        dataset = (
                            None
                            if job.dataset_id is None
                            else q.get_dataset(session, job.dataset_id)
                        )
                        if dataset is None:
                            status, fields = (
                                JobStatus.FAILED,
                                {"error": "the job's dataset was deleted"},
                            )
                            unused = weights_key
                        else:
                            q.add_model(session, job, dataset, spec, summary, weights_key, metrics)
                    q.finish_job(session, job, status, **fields)
        except q.LeaseLost:
            log.warning(
                "job %s: attempt %s lost its lease before finishing", self.job_id, self.attempt
            )
            return False
        storage().discard(q.checkpoint_prefix(self.job_id), *([unused] if unused else []))
        return True


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
