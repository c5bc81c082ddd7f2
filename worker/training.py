"""Running one attempt at a training job.

The database owns the job's state. An attempt starts by taking the job's lease
(its attempt number is the fencing token), resumes from the job's checkpoint if
an earlier attempt left one, and makes every write -- epochs, checkpoints, the
final model -- in a transaction that first proves the lease is still its own.
A worker that lost its lease stops without writing anything more. A worker
told to stop gives the job back at the next epoch boundary: a checkpoint, then
the job queued again, in one fenced transaction.

Kept apart from Celery so the same function runs under any task runner.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from core import EpochStats, Model, SpecError, StopReason, Trainer, TrainResult
from core.tabular import design
from store import JobStatus, Session, storage
from store import queries as q
from store.settings import Settings

from .evaluation import evaluate
from .frames import dataset_frame

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
        self.cancel = False
        self.lost = False
        self.given_back = False
        now = time.monotonic()
        self.last_write = now
        self.last_checkpoint = now
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, daemon=True)

    # --- called by the trainer -------------------------------------------------

    def on_epoch(self, stats: EpochStats) -> None:
        # The stats' fields as a mapping: vars() shares the frozen dataclass's own
        # dict, where asdict() deep-copies it (about 6 us, as much as a whole epoch
        # of a tiny network trained online).
        self.pending.append(vars(stats))
        now = time.monotonic()
        if now - self.last_checkpoint >= self.settings.checkpoint_seconds:
            self.write(checkpoint=True)
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

    def write(self, checkpoint: bool = False, give_back: bool = False) -> None:
        """Flush buffered epochs under the lease, and a checkpoint if asked.

        ``give_back`` also checkpoints and queues the job again (unless it was
        cancelled meanwhile: then it ends as cancelled); the caller sends the
        job's message again after this returns with ``given_back`` set.
        """
        with self._lock:
            replaced = None
            try:
                with ExitStack() as staged:
                    key = None
                    if (checkpoint or give_back) and self.trainer is not None:
                        # Stored before the transaction that names it: a worker killed
                        # in between leaves the previous checkpoint in force.
                        epoch, data = self.trainer.epoch, self.trainer.checkpoint()
                        key = staged.enter_context(
                            storage().stage(q.checkpoint_prefix(self.job_id), ".npz", data)
                        )
                    with Session.begin() as session:
                        self.cancel = q.renew_lease(session, self.job_id, self.attempt)
                        q.record_epochs(session, self.job_id, self.pending)
                        give_back = give_back and not self.cancel
                        if key is not None:
                            replaced = q.save_checkpoint(
                                session, self.job_id, self.attempt, epoch, key
                            )
                            self.last_checkpoint = time.monotonic()
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
            self.pending = []
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
        self._heartbeat.start()
        try:
            return trainer.run(on_epoch=self.on_epoch, should_stop=self.should_stop)
        finally:
            self._done.set()
            self._heartbeat.join()

    def finish(self, status: JobStatus, **fields: Any) -> None:
        """Record the last epochs and the outcome in one fenced transaction.

        ``model`` (spec, summary, weights bytes, metrics) is stored first and
        recorded in the same transaction as the outcome."""
        model = fields.pop("model", None)
        unused = None
        try:
            with ExitStack() as staged:
                weights_key = None
                if model is not None:
                    spec, summary, weights, metrics = model
                    weights_key = staged.enter_context(storage().stage("models", ".npz", weights))
                with Session.begin() as session:
                    q.renew_lease(session, self.job_id, self.attempt)
                    q.record_epochs(session, self.job_id, self.pending)
                    job = q.get_job(session, self.job_id)
                    assert job is not None
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
            return
        storage().discard(q.checkpoint_prefix(self.job_id), *([unused] if unused else []))


def within_limit(training: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The job's training config with its time limit capped by the service's."""
    asked = training.get("time_limit")
    if (
        isinstance(asked, int | float)
        and not isinstance(asked, bool)
        and asked <= settings.max_job_seconds
    ):
        return training
    return {**training, "time_limit": settings.max_job_seconds}


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_job(
    job_id: int, settings: Settings, should_give_back: Callable[[], bool] = lambda: False
) -> bool:
    """Run (or resume) job ``job_id`` if it is ours to run; a no-op otherwise.

    ``should_give_back`` is polled between epochs; once it returns True the job
    is checkpointed and queued again. Returns True when the job was given back:
    the caller must then send its message again (the queue state is committed).
    """
    with Session.begin() as session:
        attempt = q.take_lease(
            session,
            job_id,
            worker_name(),
            lease_seconds=settings.lease_seconds,
            max_attempts=settings.max_attempts,
        )
        if attempt is None:
            log.info(
                "job %s is not ours to run (finished, cancelled or leased)",
                job_id,
                extra={"job_id": job_id},
            )
            return False
        job = q.get_job(session, job_id)
        assert job is not None
        dataset = None if job.dataset_id is None else q.get_dataset(session, job.dataset_id)
        checkpoint = q.get_checkpoint(session, job_id)
        saved_key = None if checkpoint is None else checkpoint.data_key
        network, training = job.network, job.training
        start_key: str | None = None
        if job.init_model_id is not None:
            start_row = q.get_model(session, job.init_model_id)
            start_key = None if start_row is None else start_row.weights_key
        if dataset is not None:
            target_names, feature_names, task = (
                list(dataset.target_names or ()),
                dataset.feature_names,
                dataset.task or "regression",
            )
            profile_columns = (dataset.profile or {}).get("columns", [])
            ignored = [c["name"] for c in profile_columns if c.get("type") == "ignored"]

    run = Attempt(job_id, attempt, settings, should_give_back)
    if dataset is None:
        run.finish(JobStatus.FAILED, error="the job's dataset was deleted")
        return False
    if job.init_model_id is not None and start_key is None:
        run.finish(JobStatus.FAILED, error="the model the job starts from was deleted")
        return False
    try:
        saved = None if saved_key is None else storage().read(saved_key)
        start = None if start_key is None else storage().read(start_key)
        frame = dataset_frame(dataset)
        features = [name for name in frame.names if name not in target_names]
        plan = design(
            frame,
            features,
            target_names,
            task,
            network,
            within_limit(training, settings),
            start=None if start is None else Model.from_bytes(start),
        )
        if saved is not None:
            log.info(
                "job %s: attempt %s resumes from its checkpoint",
                job_id,
                attempt,
                extra={"job_id": job_id},
            )
            trainer = plan.resume(saved, frame)
        else:
            trainer = plan.trainer(frame)
        result = run.train(trainer)
    except SpecError as exc:
        run.finish(JobStatus.FAILED, stop_reason=StopReason.INVALID, error=f"invalid job: {exc}")
        return False
    except Exception as exc:  # the job must end with a reason whatever went wrong
        log.exception("job %s crashed", job_id, extra={"job_id": job_id})
        run.finish(
            JobStatus.FAILED,
            stop_reason=StopReason.ERROR,
            error=f"training crashed: {type(exc).__name__}: {exc}",
        )
        return False

    if run.given_back:
        return True
    if run.lost:
        return False
    if result.stop_reason == StopReason.STOP_REQUESTED:
        run.finish(JobStatus.CANCELLED, stop_reason=StopReason.CANCELLED)
    elif result.model is None:
        run.finish(JobStatus.FAILED, stop_reason=result.stop_reason, error=result.message)
    else:
        # The model's own epoch: under early stopping the best one, not the last.
        kept = result.kept
        summary = {
            "stop_reason": result.stop_reason,
            "message": result.message,
            "epochs_completed": result.epochs_completed,
            "epoch": kept.epoch if kept else None,
            "loss": kept.loss if kept else None,
            "val_loss": kept.val_loss if kept else None,
            "val_accuracy": kept.val_accuracy if kept else None,
        }
        trained = plan.model(result.model)
        # Unnamed columns (a JSON dataset of bare arrays) stay unnamed for clients.
        trained.feature_names = feature_names
        metrics = None
        if len(plan.test_rows):
            try:
                metrics = evaluate(trained, frame.take(plan.test_rows), target_names, split="test")
            except Exception as exc:  # the job ends with its reason, once, not a lost worker
                log.exception("job %s: scoring the held-out rows failed", job_id)
                run.finish(
                    JobStatus.FAILED,
                    stop_reason=StopReason.ERROR,
                    error=f"scoring the held-out rows failed: {type(exc).__name__}: {exc}",
                )
                return False
        # The model keeps its dataset's target columns, which predict ignores in a CSV of
        # the training data, so that they outlive the dataset.
        # ... and the columns its upload ignored (ids, names, a saved row index), which a
        # slice of the training file still holds.
        spec = {**trained.describe(), "target_names": target_names, "ignored_columns": ignored}
        model = (spec, summary, trained.to_bytes(), metrics)
        run.finish(JobStatus.SUCCEEDED, stop_reason=result.stop_reason, model=model)
    return False
