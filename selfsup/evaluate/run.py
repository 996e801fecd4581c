"""Re-evaluate a run's last checkpoint, on its own data or on another labelled source."""

from __future__ import annotations

import dataclasses
import os

from selfsup.config import ConfigError
from selfsup.evaluate.protocols import embed_images, evaluate_embeddings
from selfsup.train.run import build_method, load_run, prepare_data, protocol


def evaluate_run(run_dir: str | os.PathLike, data: str | None = None, knn_k: int | None = None) -> dict:
    """kNN top-1, linear top-1 and RankMe of the run's backbone, next to the same backbone
    with random weights; on the run's own holdout split, or on ``data``'s."""
    config, method = load_run(run_dir)
    config = dataclasses.replace(config, data=data or config.data, knn_k=knn_k or config.knn_k)
    source, train, test = prepare_data(config)
    if source.image_size != config.image_size:
        raise ConfigError(f"data={config.data!r}: images are {source.image_size} px, "
                          f"the run was trained on {config.image_size} px")
    result = {"run": str(run_dir), "data": config.data, "method": config.method}
    for prefix, model in (("", method), ("baseline_", build_method(config))):
        train_embeddings = embed_images(model.backbone, train.images, config.mean, config.std)
        test_embeddings = None if test is None else embed_images(model.backbone, test.images,
                                                                 config.mean, config.std)
        scores = evaluate_embeddings(train_embeddings, train.labels, test_embeddings,
                                     None if test is None else test.labels, config.knn_k)
        result.update({prefix + k: v for k, v in scores.items()})
    result["protocol"] = protocol(config)
    return result
