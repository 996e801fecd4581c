"""Cosine nearest neighbours of embeddings with faiss (Johnson et al. 2019, "Billion-scale
similarity search with GPUs").

Similarity is the cosine: embeddings are L2-normalised and searched by inner product.
Up to ``EXACT_MAX`` samples the index is exact (``IndexFlatIP``, a brute-force matrix
product); past it, an HNSW graph (Malkov & Yashunin 2018) answers in roughly
logarithmic time at a small loss of recall. The threshold comes from
``benchmarks/tasks_cifar10.py`` (flat vs HNSW query time, see BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from selfsup.data import DataError
from selfsup.errors import ConfigError


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


EXACT_MAX = 200_000
HNSW_NEIGHBOURS = 32  # graph degree M; search breadth efSearch = 128


def _faiss():
    import faiss

    return faiss


class NeighborIndex:
    """Cosine nearest neighbours over a fixed set of embeddings, with ids.

    ``kind``: ``"flat"`` (exact), ``"hnsw"`` (approximate) or ``"auto"`` (flat up to
    ``EXACT_MAX`` samples)."""

    def __init__(self, kind: str = "auto"):
        if kind not in ("auto", "flat", "hnsw"):
            raise ConfigError(f"index={kind!r}: expected auto, flat or hnsw")
        self.kind = kind

    def fit(self, embeddings: np.ndarray, ids: list[str] | None = None) -> "NeighborIndex":
        faiss = _faiss()
        x = np.ascontiguousarray(l2_normalize(np.asarray(embeddings, dtype=np.float32)))
        kind = self.kind if self.kind != "auto" else ("flat" if len(x) <= EXACT_MAX else "hnsw")
        if kind == "flat":
            index = faiss.IndexFlatIP(x.shape[1])
        else:
            index = faiss.IndexHNSWFlat(x.shape[1], HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = 128
        index.add(x)
        self.index_, self.kind_ = index, kind
        self.ids_ = list(ids) if ids is not None else [str(i) for i in range(len(x))]
        return self

    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, positions), each (Q, k), most similar first; positions index ``ids_``."""
        if k < 1:
            raise ConfigError(f"k={k}: expected >= 1")
        q = np.ascontiguousarray(l2_normalize(np.asarray(queries, dtype=np.float32)))
        if q.shape[1] != self.index_.d:
            raise DataError(f"queries have {q.shape[1]} dimensions, the index {self.index_.d}")
        similarities, positions = self.index_.search(q, min(k, self.index_.ntotal))
        return similarities, positions

    def save(self, path: str | os.PathLike) -> None:
        """``path`` (faiss index) and ``path.ids.json`` beside it."""
        path = Path(path)
        _faiss().write_index(self.index_, str(path))
        Path(f"{path}.ids.json").write_text(json.dumps({"kind": self.kind_, "ids": self.ids_}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NeighborIndex":
        path = Path(path)
        meta = Path(f"{path}.ids.json")
        if not path.is_file() or not meta.is_file():
            raise DataError(f"{path}: no saved index here (expected {path.name} and {meta.name})")
        saved = json.loads(meta.read_text())
        index = cls(saved["kind"])
        index.index_, index.kind_, index.ids_ = _faiss().read_index(str(path)), saved["kind"], saved["ids"]
        return index


def nearest_others(embeddings: np.ndarray, k: int, kind: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(similarities, positions), each (N, k): every sample's k nearest other samples by
    cosine, most similar first. Itself is removed wherever it is in its list (an exact
    duplicate may come first); where ties keep it out of the k + 1 found, the farthest goes."""
    similarities, positions = NeighborIndex(kind).fit(embeddings).search(embeddings, k + 1)
    is_self = positions == np.arange(len(positions))[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    keep = ~is_self
    return similarities[keep].reshape(len(keep), -1), positions[keep].reshape(len(keep), -1)
