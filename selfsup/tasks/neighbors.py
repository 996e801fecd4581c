"""Nearest neighbours of embeddings with faiss (Johnson et al. 2019, "Billion-scale
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

from selfsup.config import ConfigError
from selfsup.data import BUILTIN_DATASETS, DataError
from selfsup.tasks.common import Embedded, l2_normalize, load_embeddings

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


def _queries(query: str | None, searcher: NeighborIndex, run_or_file, accelerator=None, devices=None) -> Embedded:
    """``query``: None (every indexed sample), comma-separated ids of indexed samples, or a
    data source embedded with the same run."""
    lookup = {sample_id: i for i, sample_id in enumerate(searcher.ids_)}
    wanted = list(lookup) if query is None else [q for q in query.split(",") if q]
    if all(q in lookup for q in wanted):  # the index stores the (normalised) embeddings
        return Embedded(np.stack([searcher.index_.reconstruct(lookup[q]) for q in wanted]), wanted)
    if "," not in query and not Path(run_or_file).is_file() and (Path(query).exists() or query in BUILTIN_DATASETS):
        return load_embeddings(run_or_file, query, accelerator, devices)
    missing = next(q for q in wanted if q not in lookup)
    raise DataError(f"query={missing!r}: not a sample id of the data, nor a data source")


def neighbors(run_or_file, data: str | None = None, query: str | None = None, k: int = 10,
              index: str | os.PathLike | None = None, kind: str = "auto", out=None,
              accelerator: str | None = None, devices: str | None = None) -> list[tuple]:
    """Rows ``(query_id, rank, neighbour_id, similarity)``: the ``k`` most similar samples of
    ``data`` for each query. With ``index`` a saved index is reused if the file exists,
    else the new one is saved there. ``out``: also write the rows as a TSV file.
    ``accelerator``/``devices``: where a run embeds (default: the run's, else CPU)."""
    if index is not None and Path(index).is_file():
        searcher = NeighborIndex.load(index)
    else:
        base = load_embeddings(run_or_file, data, accelerator, devices)
        searcher = NeighborIndex(kind).fit(base.embeddings, base.ids)
        if index is not None:
            searcher.save(index)
    queries = _queries(query, searcher, run_or_file, accelerator, devices)
    similarities, positions = searcher.search(queries.embeddings, k)
    rows = [(queries.ids[q], rank + 1, searcher.ids_[p], float(s))
            for q in range(len(queries)) for rank, (p, s) in enumerate(zip(positions[q], similarities[q]))
            if p >= 0]
    if out is not None:
        write_table(out, ("query_id", "rank", "neighbor_id", "similarity"), rows)
    return rows


def write_table(path, header: tuple[str, ...], rows) -> None:
    """A tab-separated file with a header line."""
    lines = ["\t".join(header)] + ["\t".join(f"{v:.6f}" if isinstance(v, float) else str(v) for v in row)
                                   for row in rows]
    Path(path).write_text("\n".join(lines) + "\n")
