"""The backpropagation engine: NumPy only, no global state.

Typical use::

    from core import train
    result = train(network_spec, {"epochs": 100}, inputs, targets)
    outputs = result.model.predict(inputs)
"""

from .data import check_fit
from .errors import SpecError
from .gradcheck import gradient_check
from .model import Model
from .network import Backprop, Network
from .spec import NetworkSpec, TrainingConfig, parse_network, parse_training, resolve_loss
from .trainer import EpochStats, StopReason, Trainer, TrainResult, train

__all__ = [
    "Backprop",
    "EpochStats",
    "Model",
    "Network",
    "NetworkSpec",
    "SpecError",
    "StopReason",
    "TrainResult",
    "Trainer",
    "TrainingConfig",
    "check_fit",
    "gradient_check",
    "parse_network",
    "parse_training",
    "resolve_loss",
    "train",
]
