"""Planted exact and augmented duplicates in a folder of digits are found."""

import numpy as np
import pytest
from PIL import Image

from selfsup.config import ConfigError

from selfsup.tasks.dedupe import (copy_images, copy_pairs, dedupe, duplicate_groups, extreme_pairs, groups_from_pairs,
                                  keep_list)


def textures(n: int, seed: int = 0) -> np.ndarray:
    """(n, 32, 32) uint8 smooth random images (noise blurred at several scales), all different."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    x = sum(gaussian_filter(rng.normal(size=(n, 32, 32)), (0, s, s)) * s for s in (2, 4, 8))
    x = (x - x.mean(axis=(1, 2), keepdims=True)) / x.std(axis=(1, 2), keepdims=True)
    return (128 + 40 * x).clip(0, 255).astype(np.uint8)


def injected_copies(images: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``images`` followed by one copy of each of the first 50: exact, JPEG at quality 60, shifted
    by 2 px, cropped to 92% of the area and resized back, mirrored (10 each); and the pairs."""
    import io

    copies = []
    for i in range(50):
        picture = Image.fromarray(images[i])
        kind = i % 5
        if kind == 0:
            copy = images[i]
        elif kind == 1:
            buffer = io.BytesIO()
            picture.save(buffer, format="JPEG", quality=60)
            copy = np.asarray(Image.open(buffer))
        elif kind == 2:
            copy = np.pad(images[i], 2, mode="edge")[:32, 1:33]  # 2 px down, 1 px right
        elif kind == 3:
            copy = np.asarray(picture.crop((1, 2, 32, 32)).resize((32, 32), Image.BICUBIC))
        else:
            copy = images[i][:, ::-1]
        copies.append(copy)
    return np.concatenate([images, np.stack(copies)]), [(i, len(images) + i) for i in range(50)]


def test_groups_keep_one_each():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8)).astype(np.float32)
    x[10], x[20] = x[3], x[3] + 1e-4  # 3, 10, 20 duplicates
    x[40] = x[7]
    groups = duplicate_groups(x, threshold=0.99)
    assert sorted(groups) == [[3, 10, 20], [7, 40]]
    assert keep_list(50, groups) == [i for i in range(50) if i not in (10, 20, 40)]


def test_groups_are_stars_that_do_not_chain():
    angle = np.deg2rad(20)  # a ~ b and b ~ c at 20 degrees; a and c 40 degrees apart
    x = np.array([[np.cos(i * angle), np.sin(i * angle), 0] for i in range(3)], dtype=np.float32)
    assert duplicate_groups(x, threshold=np.cos(np.deg2rad(25)), center=False) == [[0, 1]]
    assert duplicate_groups(x, threshold=np.cos(np.deg2rad(45)), center=False) == [[0, 1, 2]]
    assert duplicate_groups(x[::-1], threshold=np.cos(np.deg2rad(25)), center=False) == [[0, 1]]


def test_a_long_chain_is_not_one_group():
    # 30 points on a circle, 10 degrees apart: each within the threshold (cosine of 12 degrees)
    # of the next, so a threshold graph is one connected chain spanning 290 degrees
    step, threshold = np.deg2rad(10), np.cos(np.deg2rad(12))
    x = np.array([[np.cos(i * step), np.sin(i * step), 0.0] for i in range(30)], dtype=np.float32)
    x = np.concatenate([x, np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32) * 1e-3], axis=1)
    for clusters in (1, 4):
        groups = duplicate_groups(x, threshold, center=False, clusters=clusters)
        assert max(len(g) for g in groups) <= 3  # a star: its centre and its two neighbours at most
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        assert all(unit[g[0]] @ unit[j] >= threshold for g in groups for j in g[1:])
        assert len({i for g in groups for i in g}) == sum(len(g) for g in groups)  # no sample twice


def test_extreme_pairs_name_the_tightest_and_loosest_pair():
    angles = np.deg2rad([0, 3, 10, 4.5])  # pairs: (0, 3) and (3, 10): 1.5 deg apart ... (0, 10): 10
    x = np.array([[np.cos(a), np.sin(a)] for a in angles], dtype=np.float32)
    (a, b, tight), (c, d, loose) = extreme_pairs(x, [0, 1, 2, 3])
    assert (a, b) == (1, 3) and np.isclose(tight, np.cos(np.deg2rad(1.5)), atol=1e-6)
    assert (c, d) == (0, 2) and np.isclose(loose, np.cos(np.deg2rad(10)), atol=1e-6)
    rows = [5, 0, 9]  # chunked over the rows, on a subset given in any order
    y = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    s = {(i, j): float(y[i] @ y[j]) for n, i in enumerate(rows) for j in rows[n + 1:]}
    (a, b, tight), (c, d, loose) = extreme_pairs(y, rows, chunk=1)
    assert np.isclose(tight, max(s.values())) and s[(a, b)] == max(s.values())
    assert np.isclose(loose, min(s.values())) and s[(c, d)] == min(s.values())


def test_range_search_inside_clusters_finds_planted_copies():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(20, 32)) * 2  # unrelated pairs of a cluster near cosine 0.8
    x = (centres[rng.integers(0, 20, 3000)] + rng.normal(size=(3000, 32))).astype(np.float32)
    copies = rng.choice(3000, 60, replace=False)
    originals = np.setdiff1d(np.arange(3000), copies)[rng.integers(0, 2940, 60)]
    x[copies] = x[originals] + rng.normal(scale=0.01, size=(60, 32))
    groups = duplicate_groups(x, threshold=0.98, clusters=20)
    group_of = {i: g for g, members in enumerate(groups) for i in members}
    assert all(group_of.get(a, -1) == group_of.get(b, -2) for a, b in zip(copies, originals))
    assert sum(len(g) for g in groups) <= 130  # the copies and their originals, little else
    everything = duplicate_groups(x, threshold=0.98, clusters=1)  # one cluster: an exact range search
    assert sorted(map(sorted, everything)) == sorted(map(sorted, groups))


def test_a_pair_split_by_a_cluster_boundary_is_found(monkeypatch):
    from selfsup.tasks import dedupe as dedupe_module

    rng = np.random.default_rng(0)
    a, b = np.eye(16)[0], np.eye(16)[1]
    spread = np.concatenate([np.zeros((200, 2)), rng.normal(scale=0.3, size=(200, 14))], axis=1)
    x = np.concatenate([np.r_[[a] * 100, [b] * 100] + spread,
                        [0.55 * a + 0.45 * b, 0.45 * a + 0.55 * b]]).astype(np.float32)  # 200, 201: cosine 0.98
    assert [sorted(g) for g in duplicate_groups(x, threshold=0.97, center=False, clusters=2)] == [[200, 201]]
    nearest_two = dedupe_module.nearest_two  # searching each cluster's own samples only misses the pair:
    monkeypatch.setattr(dedupe_module, "nearest_two", lambda x, c: np.repeat(nearest_two(x, c)[:, :1], 2, axis=1))
    assert duplicate_groups(x, threshold=0.97, center=False, clusters=2) == []


def test_planted_duplicates_in_a_folder_are_found(digits_run, tmp_path):
    from sklearn.datasets import load_digits

    images = (load_digits().images * 16).clip(0, 255).astype(np.uint8)
    folder = tmp_path / "folder"
    folder.mkdir()
    for i in range(300):
        Image.fromarray(images[i]).resize((32, 32), Image.BILINEAR).save(folder / f"{i:04d}.png")
    planted = []
    for i in range(0, 20):  # exact copies
        (folder / f"copy-{i:04d}.png").write_bytes((folder / f"{i:04d}.png").read_bytes())
        planted.append((f"{i:04d}.png", f"copy-{i:04d}.png"))
    for i in range(20, 40):  # augmented: brighter by 10% and re-encoded as JPEG
        picture = Image.open(folder / f"{i:04d}.png").convert("RGB")
        picture.point(lambda v: min(255, int(v * 1.1))).save(folder / f"aug-{i:04d}.jpg", quality=90)
        planted.append((f"{i:04d}.png", f"aug-{i:04d}.jpg"))
    result = dedupe(digits_run, str(folder), threshold=0.85, out=tmp_path / "out", by="embedding")
    group_of = {sample: g for g, members in enumerate(result["groups"]) for sample in members}
    found = sum(a in group_of and group_of.get(a) == group_of.get(b) for a, b in planted)
    assert found / len(planted) == 1.0
    assert len(result["keep"]) <= 300  # the copies go
    grouped = sum(len(g) for g in result["groups"])
    assert grouped < 120  # centred cosine keeps unrelated digits apart (raw cosine groups them)
    assert (tmp_path / "out" / "keep.txt").read_text().count("\n") == len(result["keep"])
    raw = dedupe(digits_run, str(folder), threshold=0.85, center=False, by="embedding")
    assert sum(len(g) for g in raw["groups"]) > grouped


def test_pixels_find_every_kind_of_copy_and_flag_no_unrelated_image():
    images, planted = injected_copies(textures(300))
    x = copy_images(images[:, None])
    pairs, scores = copy_pairs(x)
    groups = groups_from_pairs(len(x), pairs, scores, 0.96)
    assert sorted(groups) == [[a, b] for a, b in planted]  # every copy with its original, nothing else
    clean = copy_images(textures(300)[:, None])
    assert groups_from_pairs(len(clean), *copy_pairs(clean), 0.96) == []
    assert groups_from_pairs(len(x), pairs, scores, 0.5)  # a low threshold flags unrelated pairs too
    by_embedding = duplicate_groups(x.reshape(len(x), -1).astype(np.float32), 0.96)
    assert len(by_embedding) < len(planted)  # raw pixels as an embedding miss shifted and mirrored copies


def test_pixels_through_a_run_report_groups_and_their_pairs(digits_run, tmp_path):
    images, planted = injected_copies(textures(100))
    folder = tmp_path / "folder"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    result = dedupe(digits_run, str(folder), out=tmp_path / "out")  # image data from a run: by pixels
    assert result["by"] == "pixels" and result["threshold"] == 0.97
    assert sorted(result["groups"]) == [[f"{a:04d}.png", f"{b:04d}.png"] for a, b in planted]
    assert all(p["loosest"][2] >= 0.97 and p["tightest"][2] >= p["loosest"][2] for p in result["pairs"])
    table = (tmp_path / "out" / "group_pairs.tsv").read_text().splitlines()
    assert table[0].split("\t")[:5] == ["group", "size", "tightest_a", "tightest_b", "tightest_similarity"]
    assert len(table) == 1 + len(planted)
    with pytest.raises(ConfigError, match="by='nearest'"):
        dedupe(digits_run, str(folder), by="nearest")
