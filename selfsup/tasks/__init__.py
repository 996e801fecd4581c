"""Putting representations to work: pretraining (the main job), embeddings, nearest
neighbours, near-duplicates, clustering (k-means, SCAN), balanced curation, few-label
fine-tuning with FixMatch, and test-time adaptation (TENT). Each task is a public function
here and a CLI command."""

from selfsup.tasks.embed import embed_run, write_embeddings
from selfsup.tasks.pretrain import pretrain

__all__ = ["embed_run", "pretrain", "write_embeddings"]
