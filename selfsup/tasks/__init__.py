"""Putting representations to work: pretraining (the main job), embeddings, nearest
neighbours, near-duplicates, clustering (k-means, SCAN), balanced curation, few-label
fine-tuning with FixMatch, and test-time adaptation (TENT). Each task is a public function
here and a CLI command.

The functions load on first use (``from selfsup.tasks import pretrain`` imports the
training stack then), so the CLI's parser, which reads ``selfsup.tasks.commands``, starts
without importing torch, Lightning or scikit-learn."""

from importlib import import_module

PUBLIC = {"embed_run": "selfsup.tasks.embed", "write_embeddings": "selfsup.tasks.embed",
          "pretrain": "selfsup.tasks.pretraining"}

__all__ = sorted(PUBLIC)


def __getattr__(name: str):
    if name not in PUBLIC:
        raise AttributeError(f"module 'selfsup.tasks' has no attribute {name!r}")
    return getattr(import_module(PUBLIC[name]), name)
