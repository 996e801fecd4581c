"""Cosine nearest neighbours of embeddings with faiss (Johnson et al. 2019, "Billion-scale
similarity search with GPUs"), and the k-means that the large-scale tasks share.

Similarity is the cosine: embeddings are L2-normalised and searched by inner product.
Up to ``EXACT_MAX`` samples the index is exact (``IndexFlatIP``, a brute-force matrix
product); past it, an inverted file (IVF, ``IndexIVFFlat``): k-means cells over the data,
and a query scans only the ``IVF_PROBES`` cells nearest to it, which costs about
probes / cells of the exact search. The threshold comes from
``benchmarks/streaming_stages.py`` (BENCHMARKS.md, issue 18 part 3): on synthetic clustered
embeddings (d = 256, 10,000 queries) IVF was faster from 25,000 samples on, but its
recall@10 stayed under 0.99 up to 200,000 (0.94 at 25,000), where exact search still took
12 CPU seconds; above it recall was 0.998 (400,000) and 0.999 (1,000,000). An HNSW graph
(Malkov & Yashunin 2018) stays available as ``kind="hnsw"``; it answers fast but builds
slowly on a few cores (minutes per million vectors).

Nothing here forms an all-pairs matrix: the data are added to the index in chunks of
``CHUNK`` rows, and searches run over chunks of queries.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from selfsup.data import DataError
from selfsup.errors import ConfigError


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


EXACT_MAX = 200_000
HNSW_NEIGHBOURS = 32  # graph degree M; search breadth efSearch = 128
IVF_PROBES = 16  # cells scanned per query
IVF_TRAIN_PER_CELL = 64  # k-means of the cells sees at most this many samples per cell
CHUNK = 65_536
PLUS_PLUS_PER_CENTROID = 20
KINDS = ("auto", "flat", "ivf", "hnsw")


def _faiss():
    import faiss

    return faiss


def ivf_cells(n: int) -> int:
    """Cells of an inverted file over ``n`` samples: about sqrt(n) (1,000 at a million),
    so that a cell holds about as many samples as there are cells."""
    return int(max(1, min(n // 39, round(math.sqrt(n)))))


def _normalized_chunks(x: np.ndarray, chunk: int = CHUNK):
    for start in range(0, len(x), chunk):
        yield np.ascontiguousarray(l2_normalize(np.asarray(x[start:start + chunk], dtype=np.float32)))


def kmeans_faiss(x: np.ndarray, k: int, seed: int = 0, niter: int = 20, max_points_per_centroid: int = 64,
                 spherical: bool = False, restarts: int = 1, plus_plus: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(centroids (k, D), assignment (N,)) by faiss k-means (Lloyd's algorithm, squared
    Euclidean; ``spherical``: unit-norm centroids; ``restarts``: runs from different seeds,
    the lowest inertia kept; ``plus_plus``: start from k-means++ seeds (Arthur & Vassilvitskii
    2007; scikit-learn's, one trial a seed) drawn from at most ``PLUS_PLUS_PER_CENTROID * k``
    rows, instead of random rows, which on long-tailed data over-seed the dense head). The
    centroids are trained on a random sample of at most
    ``max_points_per_centroid * k`` rows (faiss' own subsampling, seeded), then every row is
    assigned to its nearest centroid in chunks, so memory stays O(N + chunk * k)."""
    faiss = _faiss()
    x = np.asarray(x, dtype=np.float32)
    k = int(min(k, len(x)))
    if k < 1:
        raise ConfigError(f"k={k}: expected at least one cluster")
    means = faiss.Kmeans(x.shape[1], k, niter=niter, nredo=restarts, seed=seed, spherical=spherical, verbose=False,
                         max_points_per_centroid=max_points_per_centroid, min_points_per_centroid=1)
    init = None
    if plus_plus and k < len(x):
        from sklearn.cluster import kmeans_plusplus

        rows = np.random.default_rng(seed).choice(len(x), min(len(x), PLUS_PLUS_PER_CENTROID * k), replace=False)
        init, _ = kmeans_plusplus(x[np.sort(rows)], k, random_state=seed, n_local_trials=1)
        init = np.ascontiguousarray(init, dtype=np.float32)
    means.train(np.ascontiguousarray(x), init_centroids=init)
    return means.centroids.copy(), assign_nearest(x, means.centroids)


def assign_nearest(x: np.ndarray, centroids: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Index of the nearest centroid (squared Euclidean) of every row of ``x``, in chunks."""
    faiss = _faiss()
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    out = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), chunk):
        out[start:start + chunk] = index.search(np.ascontiguousarray(x[start:start + chunk], dtype=np.float32), 1)[1][:, 0]
    return out


def members_of(assignment: np.ndarray, k: int) -> list[np.ndarray]:
    """members_of(a, k)[c]: the sorted indices i with a[i] == c, for c < k (one sort, not k scans)."""
    order = np.argsort(assignment, kind="stable")
    return np.split(order, np.searchsorted(assignment[order], np.arange(1, k)))


class NeighborIndex:
    """Cosine nearest neighbours over a fixed set of embeddings, with ids.

    ``kind``: ``"flat"`` (exact), ``"ivf"`` or ``"hnsw"`` (approximate), or ``"auto"``
    (flat up to ``EXACT_MAX`` samples, IVF above). After ``fit``, ``kind_`` is the kind
    built and ``description_`` says it in words (cells and probes of an IVF)."""

    def __init__(self, kind: str = "auto", seed: int = 0):
        if kind not in KINDS:
            raise ConfigError(f"index={kind!r}: expected one of {', '.join(KINDS)}")
        self.kind, self.seed = kind, seed

    def fit(self, embeddings: np.ndarray, ids: list[str] | None = None) -> "NeighborIndex":
        faiss = _faiss()
        n, d = embeddings.shape
        kind = self.kind if self.kind != "auto" else ("flat" if n <= EXACT_MAX else "ivf")
        if kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = 128
        else:
            cells = ivf_cells(n)
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, cells, faiss.METRIC_INNER_PRODUCT)
            sample = np.random.default_rng(self.seed).choice(n, min(n, cells * IVF_TRAIN_PER_CELL), replace=False)
            index.train(np.ascontiguousarray(l2_normalize(np.asarray(embeddings[np.sort(sample)], dtype=np.float32))))
            index.nprobe = min(IVF_PROBES, cells)
        for x in _normalized_chunks(embeddings):
            index.add(x)
        if kind == "ivf":
            index.make_direct_map()  # reconstruct(i) for queries given as ids
        self.index_, self.kind_ = index, kind
        self.ids_ = list(ids) if ids is not None else [str(i) for i in range(n)]
        return self

    @property
    def description_(self) -> str:
        if self.kind_ == "ivf":
            return f"ivf ({self.index_.nlist} cells, {self.index_.nprobe} probed; approximate)"
        return {"flat": "flat (exact)", "hnsw": "hnsw (approximate)"}[self.kind_]

    def vectors(self, positions) -> np.ndarray:
        """The stored (normalised) embeddings of ``positions``."""
        return np.stack([self.index_.reconstruct(int(p)) for p in positions]) if len(positions) else \
            np.empty((0, self.index_.d), dtype=np.float32)

    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, positions), each (Q, k), most similar first; positions index ``ids_``."""
        if k < 1:
            raise ConfigError(f"k={k}: expected >= 1")
        if queries.shape[1] != self.index_.d:
            raise DataError(f"queries have {queries.shape[1]} dimensions, the index {self.index_.d}")
        k = min(k, self.index_.ntotal)
        similarities = np.empty((len(queries), k), dtype=np.float32)
        positions = np.empty((len(queries), k), dtype=np.int64)
        for start, q in zip(range(0, len(queries), CHUNK), _normalized_chunks(queries)):
            similarities[start:start + len(q)], positions[start:start + len(q)] = self.index_.search(q, k)
        return similarities, positions

    def save(self, path: str | os.PathLike, source: dict | None = None) -> None:
        """``path`` (faiss index) and ``path.ids.json`` beside it, which records ``source``
        (what the embeddings came from) for ``load`` to be checked against."""
        path = Path(path)
        _faiss().write_index(self.index_, str(path))
        Path(f"{path}.ids.json").write_text(json.dumps({"kind": self.kind_, "ids": self.ids_, "source": source}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NeighborIndex":
        path = Path(path)
        meta = Path(f"{path}.ids.json")
        if not path.is_file() or not meta.is_file():
            raise DataError(f"{path}: no saved index here (expected {path.name} and {meta.name})")
        saved = json.loads(meta.read_text())
        index = cls(saved["kind"])
        index.index_, index.kind_, index.ids_ = _faiss().read_index(str(path)), saved["kind"], saved["ids"]
        index.source_ = saved.get("source")
        if index.kind_ == "ivf":  # faiss stores nprobe with the index; the direct map is rebuilt
            index.index_.make_direct_map()
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
