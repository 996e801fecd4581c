"""Putting representations to work: embedding export (more to come)."""

from selfsup.tasks.embed import embed_run, write_embeddings

__all__ = ["embed_run", "write_embeddings"]
