"""Training: epochs of mini-batch backpropagation, stopping rules, checkpoints.

``Trainer`` holds all the state of one run and nothing global, so a service can
run many at once, poll a stop request between epochs, and checkpoint after any
epoch. Resuming from the checkpoint of epoch k continues bit-for-bit as if the
run had never stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from ._types import Array
from .data import check_dataset, split
from .errors import SpecError
from .losses import count_correct, is_classifier
from .model import Model
from .network import Backprop, Network
from .normalize import Normalizer
from .online import OnlineSGD
from .online import eligible as online_eligible
from .optimizers import SGD, make_optimizer
from .schedules import Schedule
from .serialize import pack, unpack
from .spec import NetworkSpec, TrainingConfig, parse_network, parse_training, resolve_loss

CHECKPOINT_FORMAT = 1


class StopReason(StrEnum):
    """Why a job ended: the values of the ``jobs.stop_reason`` column and of the API.

    A training run ends with one of the first seven. The service records the
    others for jobs that ended outside a run's rules.
    """

    MAX_EPOCHS = "max_epochs"
    TARGET_LOSS = "target_loss"
    ALL_CORRECT = "all_correct"
    EARLY_STOPPING = "early_stopping"
    TIME_LIMIT = "time_limit"
    STOP_REQUESTED = "stop_requested"  # should_stop() said so; the service's cancel
    # Diverged, and the run has no model: the loss, the gradient norm or the weights
    # overflowed. The name predates the last two; stored jobs already use it for any
    # divergence, so it stays.
    NON_FINITE_LOSS = "non_finite_loss"

    CANCELLED = "cancelled"  # cancelled by the user, while queued or running
    NOT_QUEUED = "not_queued"  # the job could not be handed to the broker
    INVALID = "invalid"  # the engine refused the job's spec or dataset
    ERROR = "error"  # training raised
    WORKER_LOST = "worker_lost"  # attempts ran out on lost leases
    PRUNED = "pruned"  # a sweep's trial stopped early by the sweep's pruner


# Inputs or targets beyond this magnitude saturate sigmoid and tanh units and scale
# squared-error gradients up by as much: a likely cause when training diverges.
LARGE_VALUE = 10.0

# The name the worker imports.
STOP_REQUESTED = StopReason.STOP_REQUESTED


@dataclass(frozen=True)
class EpochStats:
    """What one epoch produced; the per-epoch callback receives this."""

    epoch: int
    loss: float  # mean over samples of the loss seen in the epoch's forward passes
    val_loss: float | None
    val_accuracy: float | None
    learning_rate: float
    grad_norm: float  # L2 norm of the gradient of the epoch's last mini-batch
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    model: Model | None  # None when training diverged
    epochs_completed: int
    stop_reason: StopReason
    message: str
    last: EpochStats | None  # the last epoch trained
    # The epoch whose monitored loss is the model's own: the best one under early
    # stopping, else the last. Report the model's losses from here, not from ``last``.
    # A validation loss is measured after its epoch's updates, so then the model holds
    # the weights this epoch ended with; a training loss is measured as its epoch
    # trains, so when early stopping watches it the model holds the weights this
    # epoch started from (after ``kept.epoch - 1`` epochs of updates).
    kept: EpochStats | None

    @property
    def succeeded(self) -> bool:
        return self.stop_reason != StopReason.NON_FINITE_LOSS


OnEpoch = Callable[[EpochStats], None]
ShouldStop = Callable[[], bool]


class Trainer:
    """One training run of a network on a dataset."""

    def __init__(
        self,
        network: dict[str, Any] | NetworkSpec,
        training: dict[str, Any] | TrainingConfig,
        inputs: Any,
        targets: Any,
        *,
        classes: list[str] | None = None,
        multilabel: bool = False,
    ) -> None:
        self.spec = parse_network(network)
        self.config = cfg = parse_training(training)
        self.loss = resolve_loss(self.spec, cfg)
        dtype = np.dtype(cfg.dtype)
        x, t = check_dataset(
            inputs,
            targets,
            self.spec,
            self.loss,
            dtype,
            classes=classes,
            validation_split=cfg.validation_split,
        )
        self.classes = classes
        # Each output unit is a 0/1 label of its own: accuracy is subset accuracy.
        self.multilabel = multilabel
        self.n_samples, self.n_features = x.shape

        x, t, x_val, t_val = split(x, t, cfg.validation_split, cfg.seed)
        self.normalizer = Normalizer.fit(cfg.normalize, x) if cfg.normalize else None
        if self.normalizer is not None:
            x = self.normalizer.apply(x, dtype)
            x_val = None if x_val is None else self.normalizer.apply(x_val, dtype)
        self.x, self.t, self.x_val, self.t_val = x, t, x_val, t_val

        self.network = Network.from_spec(self.spec, np.random.default_rng([cfg.seed, 0]), dtype)
        self.shuffle_rng = np.random.default_rng([cfg.seed, 2])
        self.batch_size = min(cfg.batch_size or len(x), len(x))
        self.backprop = Backprop(self.network, self.loss, self.batch_size, cfg.train_bias)
        self.params = self.network.params(cfg.train_bias)
        self.grads = self.backprop.grads()
        self.optimizer = make_optimizer(self.params, cfg.optimizer)
        self.online: OnlineSGD | None = None
        if isinstance(self.optimizer, SGD) and online_eligible(
            self.network, self.loss, self.batch_size, self.optimizer
        ):
            self.online = OnlineSGD(
                self.network, self.loss, self.optimizer, x, t, l2=cfg.l2, train_bias=cfg.train_bias
            )
        self.schedule = Schedule(cfg.optimizer.learning_rate, cfg.schedule)
        self.is_classifier = multilabel or is_classifier(self.loss, classes)

        self.epoch = 0
        self.elapsed = 0.0
        self.last_finite_loss: float | None = None
        self.best_monitored = math.inf
        self.best_epoch = 0
        self.epochs_without_improvement = 0
        self.best_network: Network | None = None
        # Early stopping on the training loss keeps the weights an epoch started from:
        # its loss was measured on them, not on the weights it ends with.
        self.epoch_start: Network | None = None
        self.best_stats: EpochStats | None = None
        self.stop_reason: StopReason | None = None
        self.stop_message = ""
        self.last: EpochStats | None = None

    # --- the loop ------------------------------------------------------------

    def run(
        self, on_epoch: OnEpoch | None = None, should_stop: ShouldStop | None = None
    ) -> TrainResult:
        """Train until a stopping rule fires; ``on_epoch`` sees every epoch's stats."""
        while self.stop_reason is None:
            if self.epoch >= self.config.epochs:
                self._stop(
                    StopReason.MAX_EPOCHS, f"trained the requested {self.config.epochs} epochs"
                )
                break
            if should_stop is not None and should_stop():
                self._stop(
                    StopReason.STOP_REQUESTED, f"stopped on request after epoch {self.epoch}"
                )
                break
            stats = self._epoch()
            if stats is None:
                break
            if on_epoch is not None:
                on_epoch(stats)
        return self._result()

    def _epoch(self) -> EpochStats | None:
        started = time.perf_counter()
        epoch = self.epoch + 1
        lr = self.schedule.rate_for(epoch)
        self.optimizer.learning_rate = lr

        if self._keeps_epoch_start:
            if self.epoch_start is None:
                self.epoch_start = self.network.copy()
            else:
                for kept, current in zip(
                    self.epoch_start.params(), self.network.params(), strict=True
                ):
                    np.copyto(kept, current)
        loss, grad_norm = self._train_pass()
        if not math.isfinite(loss):
            last = (
                f"the last finite loss was {self.last_finite_loss:.6g} at epoch {epoch - 1}"
                if self.last_finite_loss is not None
                else "no epoch had a finite loss"
            )
            self._stop(
                StopReason.NON_FINITE_LOSS,
                f"training diverged: the loss became {loss} at epoch {epoch}; {last}. "
                f"{self._divergence_hint(lr)}",
            )
            return None
        overflow = self._overflow(grad_norm, epoch)
        if overflow is not None:
            self._stop(
                StopReason.NON_FINITE_LOSS,
                f"training diverged: {overflow}, while the loss was still finite "
                f"({loss:.6g}). {self._divergence_hint(lr)}",
            )
            return None
        self.last_finite_loss = loss

        val_loss = val_accuracy = None
        if self.x_val is not None and self.t_val is not None:
            val_loss, correct = self.evaluate(self.x_val, self.t_val)
            val_accuracy = correct / len(self.x_val) if self.is_classifier else None

        monitored = loss if val_loss is None else val_loss
        self.schedule.observe(monitored)
        self.epoch = epoch
        self.elapsed += time.perf_counter() - started
        self._check_stopping_rules(loss, monitored)
        stats = EpochStats(
            epoch, loss, val_loss, val_accuracy, lr, grad_norm, time.perf_counter() - started
        )
        self.last = stats
        if self.best_epoch == epoch:
            self.best_stats = stats
        return stats

    def _overflow(self, grad_norm: float, epoch: int) -> str | None:
        """What overflowed in the epoch just trained, if anything: the weights or the
        gradient norm.

        A loss can stay finite while training diverges: saturated sigmoid or tanh
        units hold it near a constant while the weights run off to 1e198, and the
        model is noise. The line is drawn where the weights' squared norm overflows
        their dtype (weights near 1.3e154 in float64): a limit of the arithmetic,
        not a tuning knob, and far beyond any run that is still learning.
        """
        largest = float(np.finfo(self.network.dtype).max)
        params = self.network.weights + self.network.biases
        squares = sum(float(np.vdot(p, p)) for p in params)
        if not squares <= largest:  # also NaN
            if not self.network.all_finite():
                return f"the weights became NaN or infinite at epoch {epoch}"
            biggest = max(float(np.abs(p).max()) for p in params)
            return (
                f"the weights grew to {biggest:.4g} at epoch {epoch}, too large to square "
                f"in {self.network.dtype}"
            )
        if not math.isfinite(grad_norm):
            return f"the gradient norm became {grad_norm} at epoch {epoch}"
        return None

    def _divergence_hint(self, lr: float) -> str:
        """What to change, from what is known of this run: its inputs as trained on,
        its targets and its learning rate."""
        hints = []
        inputs = float(np.abs(self.x).max())
        if self.normalizer is None and inputs > LARGE_VALUE:
            hints.append(
                f"normalize the inputs, which reach {inputs:.4g} (training.normalize: standardize)"
            )
        targets = float(np.abs(self.t).max())
        if targets > LARGE_VALUE:
            hints.append(
                f"scale the targets down, which reach {targets:.4g} (the loss and its "
                "gradients grow with them)"
            )
        hints.append(f"lower the learning rate, which was {lr:g} (training.optimizer)")
        if len(hints) > 1:
            hints[-1] = "or " + hints[-1]
        return "Try: " + "; ".join(hints) + "."

    def _train_pass(self) -> tuple[float, float]:
        """One pass over the training set; returns the mean loss and last gradient norm."""
        x, t, bs = self.x, self.t, self.batch_size
        n = len(x)
        order = self.shuffle_rng.permutation(n) if self.config.shuffle else None
        if self.online is not None:
            total, grad_norm = self.online.epoch(range(n) if order is None else order.tolist())
            return total / n, grad_norm
        backprop, optimizer, params, grads = self.backprop, self.optimizer, self.params, self.grads
        l2 = self.config.l2
        # Plain SGD takes its steps lr * g straight from backprop, which folds lr into
        # the small delta arrays: one pass less over every weight array per step.
        sgd = optimizer if isinstance(optimizer, SGD) else None
        scale = optimizer.learning_rate if sgd is not None else 1.0
        loss_sum = 0.0
        grad_norm = 0.0
        # Steps are counted from the start of the run (every epoch has the same number),
        # so that a run resumed from a checkpoint flushes at the same steps.
        flush_every = optimizer.flush_interval
        steps_per_epoch = -(-n // bs)
        step = self.epoch * steps_per_epoch
        for start in range(0, n, bs):
            if order is None:
                xb, tb = x[start : start + bs], t[start : start + bs]
            else:
                idx = order[start : start + bs]
                xb, tb = x[idx], t[idx]
            loss_sum += backprop.gradients(xb, tb, scale)
            if l2:
                for w, gw in zip(self.network.weights, backprop.grad_w, strict=True):
                    gw += (l2 * scale) * w
            if start + bs >= n:
                grad_norm = _norm(grads, scale)
            if sgd is not None:
                sgd.step(params, grads)
            else:
                optimizer.update(params, grads)
            step += 1
            if flush_every is not None and step % flush_every == 0:
                optimizer.flush_subnormals()
        return loss_sum / n, grad_norm

    def evaluate(self, x: Array, t: Array) -> tuple[float, int]:
        """Mean loss and number of correctly classified samples, in buffer-sized chunks."""
        backprop = self.backprop
        loss_sum, correct = 0.0, 0
        for start in range(0, len(x), self.batch_size):
            xb, tb = x[start : start + self.batch_size], t[start : start + self.batch_size]
            a = backprop.forward(xb)
            loss_sum += backprop.loss_sum(tb)
            correct += count_correct(a, tb, self.multilabel)
        return loss_sum / len(x), correct

    def _check_stopping_rules(self, loss: float, monitored: float) -> None:
        cfg = self.config
        if cfg.early_stopping is not None:
            if monitored < self.best_monitored - cfg.early_stopping.min_delta:
                self.best_monitored = monitored
                self.best_epoch = self.epoch
                self.epochs_without_improvement = 0
                if self._keeps_epoch_start:
                    # The best network's arrays become next epoch's start buffer.
                    self.best_network, self.epoch_start = self.epoch_start, self.best_network
                else:
                    self.best_network = self.network.copy()
            else:
                self.epochs_without_improvement += 1
        if cfg.target_loss is not None and loss <= cfg.target_loss:
            self._stop(
                StopReason.TARGET_LOSS,
                f"training loss {loss:.6g} reached the target {cfg.target_loss:g}",
            )
        elif cfg.stop_when_all_correct and self.evaluate(self.x, self.t)[1] == len(self.x):
            self._stop(
                StopReason.ALL_CORRECT,
                f"every training example classified correctly at epoch {self.epoch}",
            )
        elif (
            cfg.early_stopping is not None
            and self.epochs_without_improvement >= cfg.early_stopping.patience
        ):
            self._stop(
                StopReason.EARLY_STOPPING,
                f"{self._watched} loss did not improve for {cfg.early_stopping.patience} epochs",
            )
        elif cfg.time_limit is not None and self.elapsed >= cfg.time_limit:
            self._stop(StopReason.TIME_LIMIT, f"reached the time limit of {cfg.time_limit:g} s")

    def _stop(self, reason: StopReason, message: str) -> None:
        self.stop_reason = reason
        self.stop_message = message

    @property
    def _watched(self) -> str:
        return "validation" if self.x_val is not None else "training"

    @property
    def _keeps_epoch_start(self) -> bool:
        return self.config.early_stopping is not None and self.x_val is None

    def _result(self) -> TrainResult:
        """The run's outcome; with early stopping configured, the best epoch's weights.

        The best weights are kept whatever rule ended the run: a run that runs
        out of epochs (or time, or reaches its target) while the monitored loss
        is rising would otherwise hand back worse weights than it had seen.
        """
        assert self.stop_reason is not None
        if self.stop_reason == StopReason.NON_FINITE_LOSS:
            return TrainResult(
                None, self.epoch, self.stop_reason, self.stop_message, self.last, None
            )
        network, message, kept = self.network, self.stop_message, self.last
        if self.best_network is not None:
            network, kept = self.best_network, self.best_stats
            best = f"the best {self._watched} loss {self.best_monitored:.6g}"
            if self._keeps_epoch_start:
                start = (
                    "the initial weights"
                    if self.best_epoch == 1
                    else f"those after epoch {self.best_epoch - 1}"
                )
                message += (
                    f"; kept the weights epoch {self.best_epoch} started from ({start}), "
                    f"on which it measured {best}"
                )
            else:
                message += f"; kept the weights of epoch {self.best_epoch}, {best}"
        model = Model(network.copy(), self.loss, self.normalizer, self.classes)
        return TrainResult(model, self.epoch, self.stop_reason, message, self.last, kept)

    # --- checkpoints ---------------------------------------------------------

    def checkpoint(self) -> bytes:
        """Everything needed to continue this run exactly, as ``.npz`` bytes."""
        arrays: dict[str, np.ndarray[Any, Any]] = {}
        scalars: dict[str, Any] = {}
        _put_network(arrays, "network", self.network)
        if self.best_network is not None:
            _put_network(arrays, "best", self.best_network)
        for key, value in self.optimizer.state().items():
            if isinstance(value, np.ndarray):
                arrays[f"optimizer/{key}"] = value
            else:
                scalars[key] = value
        meta = {
            "format": CHECKPOINT_FORMAT,
            "network": self.spec.to_dict(),
            "training": self.config.to_dict(),
            "classes": self.classes,
            "multilabel": self.multilabel,
            "n_samples": self.n_samples,
            "n_features": self.n_features,
            "epoch": self.epoch,
            "elapsed": self.elapsed,
            "rng": self.shuffle_rng.bit_generator.state,
            "optimizer": scalars,
            "schedule": _finite_or_none(self.schedule.state()),
            "last_finite_loss": self.last_finite_loss,
            "best_monitored": None if math.isinf(self.best_monitored) else self.best_monitored,
            "best_epoch": self.best_epoch,
            "best_stats": None if self.best_stats is None else asdict(self.best_stats),
            "epochs_without_improvement": self.epochs_without_improvement,
            "stop_reason": self.stop_reason,
            "stop_message": self.stop_message,
        }
        return pack(arrays, meta)

    @classmethod
    def resume(cls, checkpoint: bytes, inputs: Any, targets: Any) -> Trainer:
        """A trainer that continues the run saved in ``checkpoint`` on the same data."""
        arrays, meta = unpack(checkpoint)
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise SpecError("checkpoint", f"unknown checkpoint format {meta.get('format')!r}")
        trainer = cls(
            meta["network"],
            meta["training"],
            inputs,
            targets,
            classes=meta["classes"],
            multilabel=meta.get("multilabel", False),
        )
        if (trainer.n_samples, trainer.n_features) != (meta["n_samples"], meta["n_features"]):
            raise SpecError("checkpoint", "was taken on a dataset of a different shape")
        _load_network(arrays, "network", trainer.network)
        if "best/weights/0" in arrays:
            trainer.best_network = trainer.network.copy()
            _load_network(arrays, "best", trainer.best_network)
        optimizer_state: dict[str, Any] = dict(meta["optimizer"])
        optimizer_state.update(
            {
                k.removeprefix("optimizer/"): v
                for k, v in arrays.items()
                if k.startswith("optimizer/")
            }
        )
        trainer.optimizer.load_state(optimizer_state)
        schedule = meta["schedule"]
        schedule["best"] = math.inf if schedule["best"] is None else schedule["best"]
        trainer.schedule.load_state(schedule)
        trainer.shuffle_rng.bit_generator.state = meta["rng"]
        trainer.epoch = meta["epoch"]
        trainer.elapsed = meta["elapsed"]
        trainer.last_finite_loss = meta["last_finite_loss"]
        best = meta["best_monitored"]
        trainer.best_monitored = math.inf if best is None else best
        trainer.best_epoch = meta.get("best_epoch", 0)
        if meta.get("best_stats") is not None:
            trainer.best_stats = EpochStats(**meta["best_stats"])
        trainer.epochs_without_improvement = meta["epochs_without_improvement"]
        trainer.stop_reason = (
            None if meta["stop_reason"] is None else StopReason(meta["stop_reason"])
        )
        trainer.stop_message = meta["stop_message"]
        return trainer


def _put_network(arrays: dict[str, np.ndarray[Any, Any]], prefix: str, network: Network) -> None:
    for i, (w, b) in enumerate(zip(network.weights, network.biases, strict=True)):
        arrays[f"{prefix}/weights/{i}"] = w
        arrays[f"{prefix}/bias/{i}"] = b


def _load_network(arrays: dict[str, np.ndarray[Any, Any]], prefix: str, network: Network) -> None:
    for i, (w, b) in enumerate(zip(network.weights, network.biases, strict=True)):
        w[...] = arrays[f"{prefix}/weights/{i}"]
        b[...] = arrays[f"{prefix}/bias/{i}"]


def _norm(scaled: list[Array], scale: float) -> float:
    """The L2 norm of gradients held multiplied by ``scale`` (plain SGD's learning rate).

    Squaring the scaled values can overflow (or underflow) where squaring the
    gradient itself would not: a learning rate of 1e200 times a gradient of 0.1
    makes an infinite norm of a small gradient. Then the norm is taken again on
    the gradient itself, so it is infinite only when the gradient's is.
    """
    total = sum(float(np.vdot(g, g)) for g in scaled)
    if scale == 1.0 or (float(np.finfo(scaled[0].dtype).tiny) <= total < math.inf):
        return math.sqrt(total) / scale
    return math.sqrt(sum(float(np.vdot(g, g)) for g in (g / scale for g in scaled)))


def _finite_or_none(state: dict[str, Any]) -> dict[str, Any]:
    return {k: None if isinstance(v, float) and math.isinf(v) else v for k, v in state.items()}


def train(
    network: dict[str, Any] | NetworkSpec,
    training: dict[str, Any] | TrainingConfig,
    inputs: Any,
    targets: Any,
    *,
    classes: list[str] | None = None,
    multilabel: bool = False,
    on_epoch: OnEpoch | None = None,
    should_stop: ShouldStop | None = None,
) -> TrainResult:
    """Validate, train and return the result in one call."""
    trainer = Trainer(network, training, inputs, targets, classes=classes, multilabel=multilabel)
    return trainer.run(on_epoch=on_epoch, should_stop=should_stop)
