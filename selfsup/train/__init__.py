"""Training: Lightning glue, safe checkpoints, optimizers, and ``pretrain(config)``."""

from selfsup.train.run import load_run, pretrain

__all__ = ["load_run", "pretrain"]
