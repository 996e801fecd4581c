"""Training: Lightning glue, safe checkpoints, and ``prepare(config)`` then ``fit(prepared)``
(``selfsup.tasks.pretraining`` adds the evaluation and the report)."""

from selfsup.train.run import Prepared, fit, prepare

__all__ = ["Prepared", "fit", "prepare"]
