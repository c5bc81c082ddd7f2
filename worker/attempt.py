"""One attempt at a job: the lease it holds and every write it makes.

The database owns the job's state. An attempt starts by taking the job's lease
(its attempt number is the fencing token) and makes every write -- epochs,
progress, checkpoints, the final model or output -- in a transaction that first
proves the lease is still its own. A worker that lost its lease stops without
writing anything more. A worker told to stop gives the job back at the next
epoch boundary: a checkpoint, then the job queued again, in one fenced
transaction.

A write that meets an outage of the database (a dropped connection, a restart,
a lock held too long) is made again with backoff (:mod:`worker.transient`), and
training waits for it: when the database answers again within the lease, the
attempt goes on where it was. An attempt that could not write for a whole lease
period stops at the next epoch boundary and hands the job back
(:meth:`Attempt.hand_back`) rather than failing it: another attempt, maybe on
another worker, resumes it from its checkpoint.
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

from .transient import Unavailable, describe, is_transient, retrying

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
        # A sweep's trial: judges each epoch (worker.sweeps.TrialJudge); once it says
        # so, the trial stops at the next epoch boundary as pruned.
        self.judge: Callable[[EpochStats], bool] | None = None
        self.pruned = False
        self.given_back = False
        # No write succeeded for a lease period: stop and hand the job back.
        self.unreachable = False
        # The job is handed back after an error that may come back every time: the
        # attempt counts toward the limit of attempts, so that it cannot loop forever.
        self.counted = False
        # This is the job's last attempt that counts (set by the caller).
        self.last_chance = False
        # The trainer's checkpoint taken as it stopped for being unreachable: once it
        # has stopped, its own checkpoint would resume it stopped.
        self._stopped_at: tuple[int, bytes] | None = None
        now = time.monotonic()
        self.last_write = now
        # When a write last succeeded (the lease was last renewed), monotonic seconds.
        self.written_at = now
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
        if self.judge is not None and not self.pruned and self.judge(stats):
            self.pruned = True
        if self.unreachable:
            return  # kept for the hand-back's write; training stops before the next epoch
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
        # Read once: a background write or the heartbeat may set it meanwhile.
        unreachable = self.unreachable
        if unreachable and self._stopped_at is None and self.trainer is not None:
            # Between epochs, before the trainer records the stop.
            self._stopped_at = (self.trainer.epoch, self.trainer.checkpoint())
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
        return self.cancel or self.lost or self.given_back or unreachable or self.pruned

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
        if give_back and self._stopped_at is not None:
            snapshot = self._stopped_at
        elif (checkpoint or give_back) and self.trainer is not None:
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
        the ``snapshot`` (epoch, checkpoint bytes) made the job's checkpoint; made
        again through an outage until the lease would have run out."""
        with self._lock:
            try:
                replaced, given_back = retrying(
                    lambda: self._transaction(pending, snapshot, give_back),
                    patience=self._patience(),
                    what=f"job {self.job_id}: writing its progress",
                    log=log,
                )
                self.given_back = given_back
                self.written_at = time.monotonic()
                if replaced is not None:
                    self._discard(replaced)
            except q.LeaseLost:
                log.warning(
                    "job %s: attempt %s lost its lease; stopping", self.job_id, self.attempt
                )
                self.lost = True
            except Unavailable as exc:
                self._unreachable(exc)
                self.pending[:0] = pending  # written by the hand-back, if it can be
            except Exception:
                if threading.current_thread() is not self._writer:
                    raise
                # A background checkpoint that failed (storage down) is only a
                # checkpoint missed: its epochs go back to the buffer, and the next
                # write tries again.
                log.exception("job %s: writing a checkpoint failed", self.job_id)
                self.pending[:0] = pending
            self.last_write = time.monotonic()

    def _transaction(
        self,
        pending: list[dict[str, Any]],
        snapshot: tuple[int, bytes] | None,
        give_back: bool,
    ) -> tuple[str | None, bool]:
        """:meth:`_commit`'s one try: (the checkpoint key replaced, whether the job was
        given back)."""
        replaced = None
        with ExitStack() as staged:
            key = None
            if snapshot is not None:
                # Stored before the transaction that names it: a worker killed in
                # between leaves the previous checkpoint in force.
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
                    q.release_lease(session, self.job_id, self.attempt, counted=self.counted)
        return replaced, give_back

    def _patience(self) -> float:
        """Seconds left before this attempt has gone a whole lease without a write."""
        return max(0.0, self.written_at + self.settings.lease_seconds - time.monotonic())

    def _unreachable(self, exc: BaseException) -> None:
        log.warning(
            "job %s: attempt %s could not write for %.0f s (%s); it hands the job back",
            self.job_id,
            self.attempt,
            time.monotonic() - self.written_at,
            describe(exc),
            extra={"job_id": self.job_id},
        )
        self.unreachable = True

    def _discard(self, *keys: str) -> None:
        """Discard objects no row names any more; one left behind is only garbage."""
        try:
            storage().discard(*keys)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("job %s: objects %s left behind: %s", self.job_id, keys, describe(exc))

    def _beat(self) -> None:
        interval = self.settings.lease_seconds / 3
        wait = interval
        while not self._done.wait(wait):
            wait = interval
            if self.given_back or self.unreachable:
                continue
            if time.monotonic() - self.last_write < interval:
                continue
            with self._lock:
                try:
                    with Session.begin() as session:
                        self.cancel = q.renew_lease(session, self.job_id, self.attempt)
                except q.LeaseLost:
                    self.lost = True
                    return
                except Exception as exc:
                    # An outage (or any other error) must not end the heartbeat: try
                    # again soon, and give the lease up once it has run out.
                    if not is_transient(exc):
                        log.exception("job %s: renewing the lease failed", self.job_id)
                    if time.monotonic() - self.written_at >= self.settings.lease_seconds:
                        self._unreachable(exc)
                    wait = min(interval, 1.0)
                    continue
                self.last_write = self.written_at = time.monotonic()

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

    def hand_back(self, counted: bool = False) -> bool:
        """After a lease period without a write: give the job back (its epochs, a
        checkpoint when training, the job queued again) if the database answers within
        one more lease period; ``counted`` makes this attempt count toward the
        limit of attempts (it does not after an outage). Returns whether the caller
        must send the job's message again: True unless another attempt has taken
        the job over. If the database is still away, the message sent again reaches
        a worker that takes the lease over once it has expired (and the database
        answers)."""
        self.unreachable = False
        self.counted = counted
        self.written_at = time.monotonic()
        self.write(give_back=True)
        if self.given_back:
            log.info(
                "job %s: attempt %s handed the job back after an outage",
                self.job_id,
                self.attempt,
                extra={"job_id": self.job_id},
            )
        return not self.lost

    def conclude(self, status: JobStatus, **fields: Any) -> bool:
        """:meth:`finish`, handing the job back if the database stayed away; returns
        whether the caller must send the job's message again (as ``run_job`` does)."""
        self.finish(status, **fields)
        return self.hand_back() if self.unreachable else False

    def on_rows(self, rows_done: int) -> None:
        """A prediction job's progress; written as epochs are, every flush period."""
        self.rows_done = rows_done
        if time.monotonic() - self.last_write >= self.settings.epoch_flush_seconds:
            self.write()

    def finish(self, status: JobStatus, **fields: Any) -> bool:
        """Record the last epochs and the outcome in one fenced transaction; False when
        the lease was lost first, or the database stayed away for a lease period
        (``unreachable`` is then set): nothing was recorded.

        ``model`` (spec, summary, weights bytes, metrics) is stored first and
        recorded in the same transaction as the outcome; so is ``output`` (the
        file of a prediction job's outputs), whichever attempt writes it: only
        the one that still holds the lease records its key."""
        self.settle()
        model = fields.pop("model", None)
        output = fields.pop("output", None)
        if self.unreachable:
            return False
        unused = None

        def again(action: Callable[[], Any], what: str) -> Any:
            return retrying(
                action, patience=self._patience(), what=f"job {self.job_id}: {what}", log=log
            )

        try:
            with ExitStack() as staged:
                weights_key = output_key = None
                if model is not None:
                    spec, summary, weights, metrics = model
                    weights_key = again(
                        lambda: staged.enter_context(storage().stage("models", ".npz", weights)),
                        "storing its model",
                    )
                if output is not None:
                    output_key = again(
                        lambda: staged.enter_context(
                            storage().stage(
                                f"predictions/{self.job_id}", output.suffix, output, move=True
                            )
                        ),
                        "storing its output",
                    )

                def transaction() -> tuple[JobStatus, dict[str, Any], str | None]:
                    ending, recorded, unused = status, fields, None
                    with Session.begin() as session:
                        q.renew_lease(session, self.job_id, self.attempt)
                        q.record_epochs(session, self.job_id, self.pending)
                        if self.trainer is not None:
                            q.forget_epochs_after(session, self.job_id, self.trainer.epoch)
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
                                ending = JobStatus.FAILED
                                recorded = {"error": "the job's dataset was deleted"}
                                unused = weights_key
                            else:
                                q.add_model(
                                    session, job, dataset, spec, summary, weights_key, metrics
                                )
                        q.finish_job(session, job, ending, **recorded)
                    return ending, recorded, unused

                _, _, unused = again(transaction, "recording its outcome")
        except q.LeaseLost:
            log.warning(
                "job %s: attempt %s lost its lease before finishing", self.job_id, self.attempt
            )
            return False
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._unreachable(exc)
            return False
        self.written_at = time.monotonic()
        self._discard(q.checkpoint_prefix(self.job_id), *([unused] if unused else []))
        return True


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
