"""Experiment trackers beside ``metrics.jsonl``: Lightning's own loggers, each writing below
the run directory and working offline.

- ``csv``: ``RUN/csv/version_N/metrics.csv`` and ``hparams.yaml`` (no extra package).
- ``tensorboard``: ``RUN/tensorboard/version_N/`` event files (``pip install 'selfsup[tensorboard]'``);
  ``tensorboard --logdir RUN/tensorboard``.
- ``mlflow``: a file store in ``RUN/mlruns`` unless ``MLFLOW_TRACKING_URI`` names a server
  (``selfsup[mlflow]``); ``mlflow ui --backend-store-uri RUN/mlruns``.
- ``wandb``: offline in ``RUN/wandb`` unless ``WANDB_MODE=online`` (``selfsup[wandb]``);
  ``wandb sync RUN/wandb/offline-run-*`` uploads it later.

Every tracker gets the run's whole configuration as hyper-parameters once, before the
first step, and the same metrics as ``metrics.jsonl``. A resumed run starts a new version.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from selfsup.config import PretrainConfig
from selfsup.errors import ConfigError

PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "mlflow": ("mlflow",), "wandb": ("wandb",)}


def check_loggers(names) -> None:
    """One line naming the extra to install when a tracker's package is missing."""
    for name in names or ():
        packages = PACKAGES.get(name, ())
        if packages and not any(importlib.util.find_spec(p) for p in packages):
            raise ConfigError(f"logger={name}: the {packages[0]} package is not installed; "
                              f"pip install 'selfsup[{name}]'")


def create_loggers(config: PretrainConfig, out: Path) -> list:
    """The trackers ``config.loggers`` names, writing below ``out``."""
    check_loggers(config.loggers)
    made = []
    for name in config.loggers or ():
        if name == "csv":
            from lightning.pytorch.loggers import CSVLogger

            made.append(CSVLogger(out, name="csv"))
        elif name == "tensorboard":
            from lightning.pytorch.loggers import TensorBoardLogger

            made.append(TensorBoardLogger(out, name="tensorboard", default_hp_metric=False))
        elif name == "mlflow":
            from lightning.pytorch.loggers import MLFlowLogger

            uri = os.environ.get("MLFLOW_TRACKING_URI") or (out / "mlruns").resolve().as_uri()
            made.append(MLFlowLogger(experiment_name="selfsup", run_name=out.name, tracking_uri=uri))
        elif name == "wandb":
            from lightning.pytorch.loggers import WandbLogger

            made.append(WandbLogger(project=os.environ.get("WANDB_PROJECT", "selfsup"), name=out.name,
                                    save_dir=str(out), offline=os.environ.get("WANDB_MODE") != "online"))
    return made


def hyperparameters(config: PretrainConfig) -> dict:
    """The configuration as trackers take it: nested mappings flattened to ``a/b`` keys
    (by the loggers), lists as text."""
    values = config.to_dict()
    return {k: str(v) if isinstance(v, (list, tuple)) else v for k, v in values.items()}
