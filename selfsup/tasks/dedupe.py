"""Near-duplicate groups from embeddings.

Two samples are duplicates when the cosine similarity of their *centred* embeddings is at
least ``threshold``. Centring (subtracting the data set's mean embedding) matters for
CNN features after a ReLU: every embedding then lies in the positive orthant and raw
cosines of unrelated images crowd near 1, which leaves no threshold room; measured on
digits, centring spreads unrelated pairs out while duplicates stay near 1.

Pairs come from the ``neighbours`` nearest neighbours of each sample (faiss), groups are
the connected components of the duplicate pairs (union-find), and the keep-list holds
one sample per group (the first in data order) plus every sample in no group.
"""

from __future__ import annotations

import numpy as np

from selfsup.config import ConfigError
from selfsup.tasks.common import load_embeddings
from selfsup.evaluate.neighbours import nearest_others


def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving keeps the trees flat
        i = parent[i]
    return i


def duplicate_groups(embeddings: np.ndarray, threshold: float = 0.9, center: bool = True,
                     neighbours: int = 10) -> list[list[int]]:
    """Groups (lists of row indices, each of 2 or more, sorted) of near-duplicates."""
    if not -1 <= threshold <= 1:
        raise ConfigError(f"threshold={threshold}: expected a cosine similarity in [-1, 1]")
    x = np.asarray(embeddings, dtype=np.float32)
    if center:
        x = x - x.mean(axis=0, keepdims=True)
    similarities, positions = nearest_others(x, neighbours)
    parent = np.arange(len(x))
    for i, j in zip(*np.nonzero(similarities >= threshold)):
        other = positions[i, j]
        if other >= 0:
            a, b = _find(parent, i), _find(parent, int(other))
            parent[max(a, b)] = min(a, b)  # the root is the group's first sample
    roots = np.array([_find(parent, i) for i in range(len(x))])
    groups = {}
    for i, root in enumerate(roots):
        groups.setdefault(int(root), []).append(i)
    return [members for members in groups.values() if len(members) > 1]


def keep_list(n: int, groups: list[list[int]]) -> list[int]:
    """Every sample but the second and later members of each group, in data order."""
    dropped = {i for members in groups for i in members[1:]}
    return [i for i in range(n) if i not in dropped]


def dedupe(run_or_file, data: str | None = None, threshold: float = 0.9, center: bool = True,
           neighbours: int = 10, out=None, accelerator: str | None = None, devices: str | None = None) -> dict:
    """Near-duplicate groups of ``data`` (ids) and the suggested keep-list. With ``out`` (a
    directory), writes ``groups.tsv`` (group, id) and ``keep.txt`` (one id a line).
    ``accelerator``/``devices``: where a run embeds ``data`` (default: the run's, else CPU)."""
    embedded = load_embeddings(run_or_file, data, accelerator, devices)
    groups = duplicate_groups(embedded.embeddings, threshold, center, neighbours)
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
