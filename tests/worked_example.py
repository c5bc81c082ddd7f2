"""Seed 001's worked example: a 2-2-2 sigmoid network, one sample, biases frozen.

The numbers are the seed's, carried to more digits; every layer of the project
(engine, HTTP API, CLI, benchmarks) is checked against them.
"""

from __future__ import annotations

from typing import Any

# weights[j][i] is w_ji: w1, w2 feed h1 from i1, i2; w3, w4 feed h2; w5..w8 feed o1, o2.
W1_TO_W4 = [[0.15, 0.20], [0.25, 0.30]]
W5_TO_W8 = [[0.40, 0.45], [0.50, 0.55]]
NETWORK: dict[str, Any] = {
    "input_dim": 2,
    "layers": [
        {"units": 2, "activation": "sigmoid", "weights": W1_TO_W4, "bias": [0.35, 0.35]},
        {"units": 2, "activation": "sigmoid", "weights": W5_TO_W8, "bias": [0.60, 0.60]},
    ],
}
TRAINING: dict[str, Any] = {
    "epochs": 1,
    "loss": "squared_error",
    "optimizer": {"name": "sgd", "learning_rate": 0.5},
    "batch_size": 1,
    "train_bias": False,
}
INPUTS = [[0.05, 0.10]]
TARGETS = [[0.01, 0.99]]
# A POST /jobs body with the dataset inline.
JOB: dict[str, Any] = {
    "dataset": {"inputs": INPUTS, "targets": TARGETS},
    "network": NETWORK,
    "training": TRAINING,
}

EPOCH_1_LOSS = 0.298371109
# w1..w8 after one update: hidden layer rows, then output layer rows
WEIGHTS_AFTER_1 = [
    [[0.149780716, 0.19956143], [0.24975114, 0.29950229]],
    [[0.35891648, 0.408666186], [0.511301270, 0.561370121]],
]
PREDICTION_AFTER_1 = [0.742088111, 0.775284968]
EPOCH_10000_LOSS = 3.5108548e-05
PREDICTION_AFTER_10000 = [0.015913620, 0.984064274]


def training(epochs: int) -> dict[str, Any]:
    return {**TRAINING, "epochs": epochs}


def job(epochs: int = 1) -> dict[str, Any]:
    return {**JOB, "training": training(epochs)}
