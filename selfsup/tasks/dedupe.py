"""Near-duplicate groups from embeddings.

Two samples are duplicates when the cosine similarity of their *centred* embeddings is at
least ``threshold``. Centring (subtracting the data set's mean embedding) matters for
CNN features after a ReLU: every embedding then lies in the positive orthant and raw
cosines of unrelated images crowd near 1, which leaves no threshold room; measured on
digits, centring spreads unrelated pairs out while duplicates stay near 1.

As in SemDeDup (Abbas et al. 2023), the search runs inside clusters: spherical k-means
(faiss) splits the centred, normalised embeddings into about one cluster per
``CLUSTER_SIZE`` samples, and a faiss range search finds, for the samples of each cluster,
every sample at least ``threshold`` similar among those whose nearest *or second-nearest*
centroid is that cluster, so nothing forms an all-pairs matrix of the whole data and a
pair split by a cluster boundary is still found unless neither lies in the other's two
nearest clusters (measured in BENCHMARKS.md, issue 18 part 3).

Groups are stars, not chains: cluster by cluster and in data order inside, the first
sample not yet in a group becomes a group's representative (the one kept) and takes every
sample not yet in a group whose similarity to it is at least ``threshold``. So every dropped sample is a
near-duplicate of the sample kept in its place; a chain a ~ b ~ c with a and c apart no
longer merges into one group.
"""

from __future__ import annotations

import numpy as np

from selfsup.atomic import check_output, write_text
from selfsup.config import ConfigError
from selfsup.evaluate.neighbours import CHUNK, kmeans_faiss, l2_normalize, members_of
from selfsup.progress import bar
from selfsup.tasks.common import check_count, load_embeddings

CLUSTER_SIZE = 1000


def _centred_unit(embeddings: np.ndarray, center: bool) -> np.ndarray:
    """(N, D) float32: the (centred) embeddings L2-normalised, computed in chunks."""
    mean = np.zeros(embeddings.shape[1], dtype=np.float64)
    if center:
        for start in range(0, len(embeddings), CHUNK):
            mean += np.asarray(embeddings[start:start + CHUNK], dtype=np.float64).sum(axis=0)
        mean /= len(embeddings)
    out = np.empty(embeddings.shape, dtype=np.float32)
    for start in range(0, len(embeddings), CHUNK):
        out[start:start + CHUNK] = l2_normalize(np.asarray(embeddings[start:start + CHUNK], dtype=np.float32)
                                                - mean.astype(np.float32))
    return out


def nearest_two(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(N, 2): each row's most similar centroid and the next (inner product, in chunks)."""
    import faiss

    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    out = np.empty((len(x), 2), dtype=np.int64)
    for start in range(0, len(x), CHUNK):
        out[start:start + CHUNK] = index.search(np.ascontiguousarray(x[start:start + CHUNK]), 2)[1]
    return out


def duplicate_groups(embeddings: np.ndarray, threshold: float = 0.9, center: bool = True,
                     clusters: int | None = None, seed: int = 0) -> list[list[int]]:
    """Groups (lists of row indices, each of 2 or more) of near-duplicates: the first is
    the representative (the one kept), the others follow in data order, and each has a
    cosine of at least ``threshold`` with the representative; no sample is in two groups.
    Sorted by representative. ``clusters``: how many k-means clusters the search runs inside
    (default: one per ``CLUSTER_SIZE`` samples)."""
    import faiss

    if not -1 <= threshold <= 1:
        raise ConfigError(f"threshold={threshold}: expected a cosine similarity in [-1, 1]")
    x = _centred_unit(embeddings, center)
    k = clusters or max(1, round(len(x) / CLUSTER_SIZE))
    if k < 1:
        raise ConfigError(f"clusters={clusters}: expected at least 1")
    if k > 1:
        centroids, _ = kmeans_faiss(x, k, seed=seed, spherical=True, niter=10)
        nearest = nearest_two(x, centroids)
    else:
        nearest = np.zeros((len(x), 1), dtype=np.int64)
    by_home, by_near = members_of(nearest[:, 0], k), members_of(nearest.reshape(-1), k)  # by_near: home or second
    radius = float(np.nextafter(np.float32(threshold), np.float32(-2)))  # faiss keeps similarity > radius
    grouped = np.zeros(len(x), dtype=bool)
    groups = []
    for c in bar(range(k), desc="deduplicating (clusters)", unit="cluster"):
        queries = by_home[c][~grouped[by_home[c]]]  # samples at home here, in data order
        candidates = np.unique(by_near[c] // nearest.shape[1])  # samples at home or second-nearest here
        candidates = candidates[~grouped[candidates]]
        if len(queries) == 0 or len(candidates) < 2:
            continue
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x[candidates])
        lims, similarities, found = index.range_search(x[queries], radius)
        for q in np.flatnonzero(np.diff(lims) > 1):  # queries with another sample within range
            i = queries[q]
            if grouped[i]:
                continue
            close = candidates[found[lims[q]:lims[q + 1]][similarities[lims[q]:lims[q + 1]] >= threshold]]
            close = close[(close != i) & ~grouped[close]]
            if len(close):
                grouped[i] = grouped[close] = True
                groups.append([int(i)] + sorted(int(j) for j in close))
    return sorted(groups)


def keep_list(n: int, groups: list[list[int]]) -> list[int]:
    """Every sample but the second and later members of each group, in data order."""
    dropped = {i for members in groups for i in members[1:]}
    return [i for i in range(n) if i not in dropped]


def dedupe(run_or_file, data: str | None = None, threshold: float = 0.9, center: bool = True,
           clusters: int | None = None, out=None, accelerator: str | None = None, devices: str | None = None) -> dict:
    """Near-duplicate groups of ``data`` (ids; the first of each is kept) and the suggested
    keep-list. With ``out`` (a directory), writes ``groups.tsv`` (group, id) and
    ``keep.txt`` (one id a line). ``clusters``: see ``duplicate_groups``.
    ``accelerator``/``devices``: where a run embeds ``data`` (default: the run's, else CPU)."""
    if out is not None:
        check_output(out, "folder")
    embedded = load_embeddings(run_or_file, data, accelerator, devices)
    if clusters is not None:
        check_count("clusters", clusters, len(embedded))
    groups = duplicate_groups(embedded.embeddings, threshold, center, clusters)
    keep = keep_list(len(embedded), groups)
    result = {"samples": len(embedded), "groups": [[embedded.ids[i] for i in g] for g in groups],
              "keep": [embedded.ids[i] for i in keep]}
    if out is not None:
        from pathlib import Path

        from selfsup.tasks.neighbors import write_table

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_table(out / "groups.tsv", ("group", "id"),
                    [(g, sample) for g, members in enumerate(result["groups"]) for sample in members])
        write_text(out / "keep.txt", "".join(i + "\n" for i in result["keep"]))
    return result
