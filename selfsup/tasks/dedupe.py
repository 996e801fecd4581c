"""Near-duplicate groups from embeddings.

Two samples are duplicates when the cosine similarity of their *centred* embeddings is at
least ``threshold``. Centring (subtracting the data set's mean embedding) matters for
CNN features after a ReLU: every embedding then lies in the positive orthant and raw
cosines of unrelated images crowd near 1, which leaves no threshold room; measured on
digits, centring spreads unrelated pairs out while duplicates stay near 1.

As in SemDeDup (Abbas et al. 2023), the search runs inside clusters: spherical k-means
(faiss) splits the centred, normalised embeddings into about one cluster per
``CLUSTER_SIZE`` samples, and a faiss range search inside each cluster finds every pair
at least ``threshold`` apart, so nothing forms an all-pairs matrix of the whole data. A
duplicate pair split by a cluster boundary is missed; near-identical samples almost
always share their nearest centroid.

Groups are stars, not chains: in data order, the first sample not yet in a group becomes a
group's representative (the one kept) and takes every sample of its cluster not yet in
a group whose similarity to it is at least ``threshold``. So every dropped sample is a
near-duplicate of the sample kept in its place; a chain a ~ b ~ c with a and c apart no
longer merges into one group.
"""

from __future__ import annotations

import numpy as np

from selfsup.config import ConfigError
from selfsup.evaluate.neighbours import CHUNK, assign_nearest, kmeans_faiss, l2_normalize
from selfsup.progress import bar
from selfsup.tasks.common import load_embeddings

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


def duplicate_groups(embeddings: np.ndarray, threshold: float = 0.9, center: bool = True,
                     clusters: int | None = None, seed: int = 0) -> list[list[int]]:
    """Groups (lists of row indices, each of 2 or more) of near-duplicates: the first is
    the representative (the one kept), the others follow in data order, and each has a
    cosine of at least ``threshold`` with the representative. Sorted by representative. ``clusters``: how many k-means clusters the search runs inside
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
        assignment = assign_nearest(x, centroids)
    else:
        assignment = np.zeros(len(x), dtype=np.int64)
    order = np.argsort(assignment, kind="stable")  # by cluster, data order inside
    bounds = np.searchsorted(assignment[order], np.arange(k + 1))
    radius = float(np.nextafter(np.float32(threshold), np.float32(-2)))  # faiss keeps similarity > radius
    groups = []
    for c in bar(range(k), desc="deduplicating (clusters)", unit="cluster"):
        members = order[bounds[c]:bounds[c + 1]]
        if len(members) < 2:
            continue
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x[members])
        lims, similarities, found = index.range_search(x[members], radius)
        grouped = np.zeros(len(members), dtype=bool)
        for i in np.flatnonzero(np.diff(lims) > 1):  # members with another member within range
            if grouped[i]:
                continue
            near = found[lims[i]:lims[i + 1]][similarities[lims[i]:lims[i + 1]] >= threshold]
            near = near[(near != i) & ~grouped[near]]
            if len(near):
                grouped[i] = grouped[near] = True
                groups.append([int(members[i])] + sorted(int(members[j]) for j in near))
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
    embedded = load_embeddings(run_or_file, data, accelerator, devices)
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
        (out / "keep.txt").write_text("".join(i + "\n" for i in result["keep"]))
    return result
