"""A run directory, opened: ``Run(path)`` is how everything after training starts.

``runs/x/config.yaml`` (every option, resolved), ``checkpoints/`` (``last`` links the newest
complete epoch), ``metrics.jsonl``, ``summary.json`` (the evaluation) and ``report.html``.
A ``Run`` reads them, builds the method with the last weights, prepares the data as the run
saw it (the same fixed holdout), says where its model works on this machine, and writes
the summary atomically.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from selfsup import backbones, methods
from selfsup.atomic import write_text
from selfsup.config import ConfigError, PretrainConfig
from selfsup.devices import Placement, placement
from selfsup.train.checkpoint import CheckpointError, last_checkpoint, load_weights
from selfsup.train.module import read_metrics
from selfsup.train.run import build_method, prepare_data
from selfsup.train.speed import apply_speed_switches


def check_fits(source, data: str, modality: str | None, image_size: int | None, input_shape) -> None:
    """Refuse (``ConfigError``) data ``source`` that a model trained on ``modality`` data of
    ``image_size`` px and samples of ``input_shape`` cannot take: another modality, images of
    another size, or another number of features, series channels or image channels."""
    from selfsup import modalities

    if modality is not None and source.modality != modality:
        raise ConfigError(f"data={data!r}: {source.modality} data, the model takes {modality} data")
    if modalities.get(source.modality).sized and source.image_size != image_size:
        raise ConfigError(f"data={data!r}: images are {source.image_size} px, the model was trained "
                          f"on {image_size} px")
    trained = list(input_shape or [])[:1]
    if trained and list(source.input_shape[:1]) != trained:
        raise ConfigError(f"data={data!r}: samples of shape {list(source.input_shape)}, the model was "
                          f"trained on {list(input_shape)}")


class Run:
    def __init__(self, directory: str | os.PathLike, config: PretrainConfig | None = None):
        self.directory = Path(directory)
        if config is None:
            if not (self.directory / "config.yaml").is_file():
                raise ConfigError(f"{self.directory}: not a run directory (no config.yaml)")
            config = PretrainConfig.load(self.directory / "config.yaml")
        self.config = config

    def __repr__(self) -> str:
        return f"Run({str(self.directory)!r})"

    @property
    def last_checkpoint(self) -> Path:
        """The checkpoint ``checkpoints/last`` links (never one outside the run directory)."""
        return last_checkpoint(self.directory / "checkpoints")

    def method(self, weights: bool = True) -> methods.Method:
        """The run's method, with the weights of its last checkpoint (``weights=False``: the
        same architecture freshly initialised from the run's seed, the random-weights baseline,
        even for a run that started from ``init`` weights)."""
        config = self.config
        last = self.last_checkpoint if weights else None
        method = build_method(config, init=False)
        if last is not None:
            state = {k.removeprefix("method."): v for k, v in load_weights(last).items()}
            missing, unexpected = method.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise CheckpointError(f"{last}: weights do not match method {config.method} with backbone "
                                      f"{config.backbone} (missing {missing[:3]}, unexpected {unexpected[:3]})")
        return apply_speed_switches(method, config.channels_last)  # the kernels the run's own evaluation used

    def data(self, data: str | None = None):
        """(source, train, test) of ``data`` (default: the run's) as the run splits it; other
        data must fit the model (``check_fits``)."""
        config = self.config if data is None else dataclasses.replace(self.config, data=data)
        source, train, test = prepare_data(config)
        if data is not None:
            check_fits(source, data, config.modality, config.image_size, config.input_shape)
        return source, train, test

    def placement(self, accelerator: str | None = None, devices: str | None = None) -> Placement:
        """Where the model works here: ``accelerator``/``devices`` when given, else its training
        device (rank 0's) and precision where this machine has it, else the CPU."""
        return run_placement(self.config, accelerator, devices)

    @property
    def protocol(self) -> str:
        return protocol(self.config)

    @property
    def summary(self) -> dict:
        path = self.directory / "summary.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def write_summary(self, summary: dict) -> None:
        write_text(self.directory / "summary.json", json.dumps(summary, indent=2) + "\n")

    def metrics(self) -> list[dict]:
        path = self.directory / "metrics.jsonl"
        return [record for _, record in read_metrics(path)] if path.exists() else []


def run_placement(config: PretrainConfig, accelerator: str | None = None, devices: str | None = None) -> Placement:
    return placement(accelerator, devices, trained_on=config.accelerator, trained_precision=config.precision,
                     modality=backbones.modality(config.backbone))


EVAL_TRAIN_ROWS = 50_000  # the kNN bank and the linear probe's training rows, at most


def evaluation_rows(n: int, limit: int | None = None) -> np.ndarray | None:
    """The training rows evaluation uses out of ``n``: None (all of them) up to ``limit``
    (default ``EVAL_TRAIN_ROWS``), else ``limit`` rows drawn uniformly at random with seed 0,
    sorted, so that kNN banks and linear probes stay bounded on large data."""
    limit = EVAL_TRAIN_ROWS if limit is None else limit
    return None if n <= limit else np.sort(np.random.default_rng(0).choice(n, limit, replace=False))


def protocol(config: PretrainConfig) -> str:
    return (f"frozen {config.backbone} embeddings; kNN: cosine, k={config.knn_k}, T=0.07 weighted votes; "
            f"linear: logistic regression on standardised embeddings; test = fixed stratified "
            f"{config.holdout:.0%} holdout (seed 0) excluded from pretraining; kNN bank and linear probe "
            f"on at most {EVAL_TRAIN_ROWS:,} training rows (uniform random, seed 0)")


def load_run(run_dir: str | os.PathLike) -> tuple[PretrainConfig, methods.Method]:
    """The config and the method of a run, with the weights of its last checkpoint."""
    run = Run(run_dir)
    return run.config, run.method()
