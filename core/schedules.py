"""Learning-rate schedules, stepped once per epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # spec imports this module for the names
    from .spec import ScheduleConfig

# constant: the base rate; invscaling: base / epoch**power; plateau: lowered by
# ``factor`` after ``patience`` epochs without improvement.
SCHEDULES = ("constant", "invscaling", "plateau")


class Schedule:
    """Gives the learning rate for each epoch; ``plateau`` also watches the loss."""

    def __init__(self, base_rate: float, config: ScheduleConfig) -> None:
        self.config = config
        self.base_rate = base_rate
        self.rate = base_rate
        self.best = float("inf")
        self.wait = 0

    def rate_for(self, epoch: int) -> float:
        """The rate to train epoch ``epoch`` (1-based) with."""
        if self.config.name == "invscaling":
            self.rate = self.base_rate / epoch**self.config.power
        return self.rate

    def observe(self, loss: float) -> None:
        """After an epoch: on a plateau, lower the rate by ``factor``."""
        if self.config.name != "plateau":
            return
        if loss < self.best - self.config.min_delta:
            self.best = loss
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.config.patience:
            self.rate = max(self.rate * self.config.factor, self.config.min_learning_rate)
            self.wait = 0

    def state(self) -> dict[str, Any]:
        return {"rate": self.rate, "best": self.best, "wait": self.wait}

    def load_state(self, state: dict[str, Any]) -> None:
        self.rate = float(state["rate"])
        self.best = float(state["best"])
        self.wait = int(state["wait"])
