"""Near-duplicate groups, by embedding (semantic near-duplicates) or by pixels (copies).

**By embedding** (SemDeDup, Abbas et al. 2023, "SemDeDup: Data-efficient learning at
web-scale through semantic deduplication"): two samples are duplicates when the cosine
similarity of their *centred* embeddings is at least ``threshold``. Centring (subtracting
the data set's mean embedding) matters for CNN features after a ReLU: every embedding then
lies in the positive orthant and raw cosines of unrelated images crowd near 1, which leaves
no threshold room; measured on digits, centring spreads unrelated pairs out while
duplicates stay near 1. As in SemDeDup, the search runs inside clusters: spherical k-means
(faiss) splits the centred, normalised embeddings into about one cluster per
``CLUSTER_SIZE`` samples, and a faiss range search finds, for the samples of each cluster,
every sample at least ``threshold`` similar among those whose nearest *or second-nearest*
centroid is that cluster, so nothing forms an all-pairs matrix of the whole data and a
pair split by a cluster boundary is still found unless neither lies in the other's two
nearest clusters (measured in BENCHMARKS.md, issue 18 part 3).

**By pixels** (images; no model): an encoder trained for invariance to crops and colour
maps distinct images of one kind close together, and a strided CNN is not even invariant
to 1-2 px shifts; measured on CIFAR-10 test with injected copies (BENCHMARKS.md, "Dedupe on
injected duplicates"), no embedding threshold separated shifted, mirrored or cropped copies
from unrelated images. Copy detection therefore retrieves candidates, then verifies them
geometrically, as copy-detection systems do: every image is resized to ``COPY_SIZE`` px;
each one's ``COPY_CANDIDATES`` nearest by a mirror-symmetric 8 x 8 thumbnail are its
candidates; a pair's similarity is the highest Pearson correlation of the two (blurred)
images over shifts of up to ``COPY_SHIFT`` px and a left-right mirror
(``aligned_similarity``), each also with one image zoomed by ``COPY_ZOOMS``, so exact
copies, re-encodings, shifts and mirror images score ~1 and small crops (resized back)
close to it. The default threshold (``THRESHOLDS``) is the best measured there.

Groups are stars, not chains, either way: in data order (cluster by cluster by embedding),
the first sample not yet in a group becomes a group's representative (the one kept) and
takes every sample not yet in a group whose similarity to it is at least ``threshold``. So
every dropped sample is a near-duplicate of the sample kept in its place; a chain
a ~ b ~ c with a and c apart does not merge into one group. Each group reports its
tightest and loosest pair over all its members.
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
    if not -1 <= threshold <= 1:
        raise ConfigError(f"threshold={threshold}: expected a cosine similarity in [-1, 1]")
    return _star_groups(_centred_unit(embeddings, center), threshold, clusters, seed)


def _star_groups(x: np.ndarray, threshold: float, clusters: int | None, seed: int) -> list[list[int]]:
    """``duplicate_groups`` of unit rows ``x`` (cosine = inner product)."""
    import faiss

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


def extreme_pairs(x: np.ndarray, members: list[int], chunk: int = 2048) -> tuple[tuple, tuple]:
    """((i, j, cosine) of the most similar pair, (i, j, cosine) of the least similar pair)
    among the rows ``members`` (2 or more) of unit rows ``x``; i before j in ``members``.
    Every pair of the group is compared, not only those with its representative."""
    v = np.ascontiguousarray(x[np.asarray(members)], dtype=np.float32)
    m = len(v)
    tightest, loosest = (0, 1, -np.inf), (0, 1, np.inf)
    for start in range(0, m, chunk):
        s = v[start:start + chunk] @ v.T
        later = np.arange(m)[None, :] > np.arange(start, start + len(s))[:, None]  # each pair once
        top, bottom = np.where(later, s, -np.inf), np.where(later, s, np.inf)
        (a, b), (c, d) = np.unravel_index(top.argmax(), s.shape), np.unravel_index(bottom.argmin(), s.shape)
        if top[a, b] > tightest[2]:
            tightest = (start + a, b, top[a, b])
        if bottom[c, d] < loosest[2]:
            loosest = (start + c, d, bottom[c, d])
    return tuple((members[i], members[j], float(sim)) for i, j, sim in (tightest, loosest))


COPY_SIZE = 32  # pixels compares images at this size (area-averaged down, bilinear up)
COPY_SHIFT = 2  # pixels aligns over shifts of up to this many pixels at COPY_SIZE, each way
COPY_CANDIDATES = 8  # pixels verifies each image's nearest thumbnails, this many
COPY_ZOOMS = (1.04,)  # pixels also aligns each image magnified by these (crops of 90-95% of the area)
COPY_BLUR = 1.0  # Gaussian sigma (pixels at COPY_SIZE) before comparing: tolerates re-encoding and small zooms
THRESHOLDS = {"embedding": 0.9, "pixels": 0.97}


def copy_images(samples, batch_size: int = 1024) -> np.ndarray:
    """(N, C, COPY_SIZE, COPY_SIZE) uint8: every image of ``samples`` (uint8 (N, C, H, W),
    anything sliceable) resized, read batch by batch."""
    import torch
    import torch.nn.functional as F

    out = np.empty((len(samples), samples[0:1].shape[1], COPY_SIZE, COPY_SIZE), dtype=np.uint8)
    for start in range(0, len(samples), batch_size):
        x = torch.as_tensor(samples[start:start + batch_size]).float()
        if x.shape[-2:] != (COPY_SIZE, COPY_SIZE):
            x = (F.adaptive_avg_pool2d(x, COPY_SIZE) if min(x.shape[-2:]) >= COPY_SIZE
                 else F.interpolate(x, size=(COPY_SIZE, COPY_SIZE), mode="bilinear", align_corners=False))
        out[start:start + len(x)] = x.round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def _smoothed(images: np.ndarray):
    """float (N, C, S, S) images blurred by a Gaussian of sigma COPY_BLUR (5 taps, edges
    repeated), as two matrix products (a blur matrix each side), far faster than a convolution."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    size = x.shape[-1]
    taps = np.exp(-np.arange(-2, 3) ** 2 / (2 * COPY_BLUR ** 2))
    blur = np.zeros((size, size))
    for i in range(size):
        for offset, tap in zip(range(-2, 3), taps / taps.sum()):
            blur[i, min(max(i + offset, 0), size - 1)] += tap
    blur = torch.from_numpy(blur).float()
    return blur @ x @ blur.T


def aligned_similarity(a, b, shift: int = COPY_SHIFT):
    """(P,) for float image pairs a[p], b[p] of shape (P, C, S, S): the highest Pearson
    correlation of a's central (S - 2 shift)^2 window with a same-sized window of b or of b
    mirrored left-right, moved by up to ``shift`` pixels each way. 1 for an image and its
    copy shifted by at most ``shift`` or flipped; image statistics (brightness, contrast)
    do not count."""
    import torch
    import torch.nn.functional as F

    pairs, channels, size, _ = a.shape
    width = size - 2 * shift
    centre = a[:, :, shift:shift + width, shift:shift + width]
    centre = centre - centre.mean(dim=(1, 2, 3), keepdim=True)
    centre = centre / centre.flatten(1).norm(dim=1).clamp_min(1e-6)[:, None, None, None]
    # a's mirrored centre on b at shift (y, x) is a's centre on b mirrored at (y, -x): one grouped
    # convolution gives the dot products for every shift, both ways round
    weights = torch.stack([centre, centre.flip(-1)], dim=1)
    dots = F.conv2d(b.reshape(1, pairs * channels, size, size), weights.reshape(2 * pairs, channels, width, width),
                    groups=pairs).view(pairs, -1)
    area = width * width  # b's window norms (its own mean removed) from box sums
    total = F.avg_pool2d(b.sum(1, keepdim=True), width, stride=1).view(pairs, 1, -1) * area
    squares = F.avg_pool2d((b * b).sum(1, keepdim=True), width, stride=1).view(pairs, 1, -1) * area
    norms = (squares - total * total / (channels * area)).clamp_min(1e-12).sqrt().clamp_min(1e-6)
    return (dots.view(pairs, 2, -1) / norms).flatten(1).amax(1)


def copy_pairs(images: np.ndarray, candidates: int = COPY_CANDIDATES, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (M, 2) of rows i < j of ``images`` (uint8 (N, C, S, S) from
    ``copy_images``) and their ``aligned_similarity`` (the larger of both directions):
    each image with its ``candidates`` nearest by a flip-symmetric thumbnail (8 x 8 of the
    blurred image, its own mean removed, centred, cosine; exact search up to ``EXACT_MAX`` images, IVF above)."""
    import torch
    import torch.nn.functional as F

    from selfsup.evaluate.neighbours import NeighborIndex

    thumbs = np.empty((len(images), images.shape[1] * 64), dtype=np.float32)
    for start in range(0, len(images), CHUNK):  # blurred first: shifted copies stay nearer (0.98 of them
        t = F.adaptive_avg_pool2d(_smoothed(images[start:start + CHUNK]), 8)  # among 8 candidates, not 0.96)
        t = (t + t.flip(-1)).flatten(1)
        thumbs[start:start + CHUNK] = (t - t.mean(1, keepdim=True)).numpy()
    thumbs = _centred_unit(thumbs, True)
    k = min(candidates + 1, len(images))
    index = NeighborIndex().fit(thumbs)
    near = np.concatenate([index.search(thumbs[s:s + CHUNK], k)[1] for s in range(0, len(thumbs), CHUNK)])
    rows = np.repeat(np.arange(len(images)), k)
    pairs = np.stack([np.minimum(rows, near.reshape(-1)), np.maximum(rows, near.reshape(-1))], axis=1)
    pairs = np.unique(pairs[(pairs[:, 0] != pairs[:, 1]) & (pairs[:, 0] >= 0)], axis=0)
    return pairs, copy_similarity(images, pairs, chunk)


def copy_similarity(images: np.ndarray, pairs: np.ndarray, chunk: int = 512) -> np.ndarray:
    """(M,) ``aligned_similarity`` of the blurred images of each pair (i, j), the larger of
    both directions."""
    import torch

    scores = np.empty(len(pairs), dtype=np.float32)
    for start in bar(range(0, len(pairs), chunk), desc="aligning candidate pairs", unit="chunk"):
        i, j = pairs[start:start + chunk].T
        a, b = _smoothed(images[i]), _smoothed(images[j])
        best = torch.maximum(aligned_similarity(a, b), aligned_similarity(b, a))
        for zoom in COPY_ZOOMS:  # a small crop resized back is the other image zoomed in
            best = torch.maximum(best, torch.maximum(aligned_similarity(_zoomed(a, zoom), b),
                                                     aligned_similarity(_zoomed(b, zoom), a)))
        scores[start:start + chunk] = best.numpy()
    return scores


def _zoomed(x, zoom: float):
    """Images x (N, C, S, S) magnified by ``zoom`` about their centre (bilinear, same size)."""
    import torch
    import torch.nn.functional as F

    theta = torch.tensor([[1 / zoom, 0.0, 0.0], [0.0, 1 / zoom, 0.0]], dtype=x.dtype).expand(len(x), 2, 3)
    return F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), mode="bilinear",
                         padding_mode="border", align_corners=False)


def groups_from_pairs(n: int, pairs: np.ndarray, scores: np.ndarray, threshold: float) -> list[list[int]]:
    """Star groups (as ``duplicate_groups``) over the pairs whose score is at least
    ``threshold``: in data order, the first sample not yet grouped with such a pair to a
    sample not yet grouped keeps every such sample."""
    kept = pairs[scores >= threshold]
    both = np.concatenate([kept, kept[:, ::-1]])
    both = both[np.lexsort((both[:, 1], both[:, 0]))]
    starts = np.searchsorted(both[:, 0], np.arange(n + 1))
    grouped = np.zeros(n, dtype=bool)
    groups = []
    for i in np.unique(both[:, 0]):
        if grouped[i]:
            continue
        close = both[starts[i]:starts[i + 1], 1]
        close = close[~grouped[close]]
        if len(close):
            grouped[i] = grouped[close] = True
            groups.append([int(i)] + sorted(int(j) for j in close))
    return groups


def keep_list(n: int, groups: list[list[int]]) -> list[int]:
    """Every sample but the second and later members of each group, in data order."""
    dropped = {i for members in groups for i in members[1:]}
    return [i for i in range(n) if i not in dropped]


def extreme_copy_pairs(images: np.ndarray, members: list[int]) -> tuple[tuple, tuple]:
    """As ``extreme_pairs``, by ``copy_similarity`` of the images (uint8 from ``copy_images``)."""
    first, second = np.triu_indices(len(members), 1)
    pairs = np.asarray(members)[np.stack([first, second], axis=1)]
    scores = copy_similarity(images, pairs)
    return tuple((int(pairs[n][0]), int(pairs[n][1]), float(scores[n])) for n in (scores.argmax(), scores.argmin()))


BY = ("auto", "embedding", "pixels")


def _image_source(run_or_file, data: str | None, by: str):
    """The image source that ``by`` compares as pixels, or None where it compares embeddings."""
    from pathlib import Path

    from selfsup import modalities
    from selfsup.tasks.common import open_run_source

    if by == "embedding":
        return None
    path = Path(run_or_file)
    if path.is_file():
        if by == "pixels":
            raise ConfigError(f"by=pixels: needs a run directory and image data, got the embeddings file {path}")
        return None
    from selfsup.runs import Run

    config = Run(path).config
    source = open_run_source(data or config.data, config)
    if not modalities.get(source.modality).sized:
        if by == "pixels":
            raise ConfigError(f"by=pixels: needs image data, {data or config.data} holds {source.modality} data")
        return None
    return source


def dedupe(run_or_file, data: str | None = None, threshold: float | None = None, center: bool = True,
           clusters: int | None = None, out=None, accelerator: str | None = None, devices: str | None = None,
           by: str = "auto") -> dict:
    """Near-duplicate groups of ``data`` (ids; the first of each is kept), per group its
    tightest and loosest pair (``pairs``: [id, id, similarity] of the most and the least
    similar two members) and the suggested keep-list. With ``out`` (a directory), writes
    ``groups.tsv`` (group, id), ``group_pairs.tsv`` (group, size, tightest pair and its
    similarity, loosest pair and its similarity) and ``keep.txt`` (one id a line).

    ``by``: ``embedding`` (SemDeDup: centred-embedding cosine, ``duplicate_groups``;
    ``clusters``: see there), ``pixels`` (copies of images: ``copy_pairs``, aligned pixel
    correlation; no model), ``auto`` (pixels for image data from a run, else embedding).
    ``threshold``: default ``THRESHOLDS[by]``. ``accelerator``/``devices``: where a run
    embeds ``data`` (default: the run's, else CPU)."""
    if by not in BY:
        raise ConfigError(f"by={by!r}: expected one of {', '.join(BY)}")
    if threshold is not None and not -1 <= threshold <= 1:
        raise ConfigError(f"threshold={threshold}: expected a similarity in [-1, 1]")
    if out is not None:
        check_output(out, "folder")
    source = _image_source(run_or_file, data, by)
    by = "embedding" if source is None else "pixels"
    threshold = THRESHOLDS[by] if threshold is None else threshold
    if source is None:
        embedded = load_embeddings(run_or_file, data, accelerator, devices)
        if clusters is not None:
            check_count("clusters", clusters, len(embedded))
        x = _centred_unit(embedded.embeddings, center)
        groups = _star_groups(x, threshold, clusters, seed=0)
        ids = embedded.ids
        pairs = [extreme_pairs(x, g) for g in groups]
    else:
        images = copy_images(source.samples)
        groups = groups_from_pairs(len(images), *copy_pairs(images), threshold)
        ids = list(source.ids)
        pairs = [extreme_copy_pairs(images, g) for g in groups]
    keep = keep_list(len(ids), groups)
    result = {"samples": len(ids), "by": by, "threshold": threshold, "groups": [[ids[i] for i in g] for g in groups],
              "pairs": [{"tightest": [ids[a], ids[b], round(s, 6)], "loosest": [ids[c], ids[d], round(t, 6)]}
                        for (a, b, s), (c, d, t) in pairs],
              "keep": [ids[i] for i in keep]}
    if out is not None:
        from pathlib import Path

        from selfsup.tasks.neighbors import write_table

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_table(out / "groups.tsv", ("group", "id"),
                    [(g, sample) for g, members in enumerate(result["groups"]) for sample in members])
        write_table(out / "group_pairs.tsv", ("group", "size", "tightest_a", "tightest_b", "tightest_similarity",
                                              "loosest_a", "loosest_b", "loosest_similarity"),
                    [(g, len(members), *p["tightest"], *p["loosest"])
                     for g, (members, p) in enumerate(zip(result["groups"], result["pairs"]))])
        write_text(out / "keep.txt", "".join(i + "\n" for i in result["keep"]))
    return result
