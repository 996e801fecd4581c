import os
import warnings

import pytest
import torch

from selfsup.data.cache import cache_location, cached_folder_source
from tests.data.test_sources import save


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "pictures"
    for i in range(3):
        save(root / "cat" / f"{i}.png", seed=i)
    save(root / "dog" / "a.jpg", size=(30, 20), seed=9)
    return root


def same_source(a, b):
    return (torch.equal(a.images, b.images) and a.ids == b.ids and a.classes == b.classes
            and torch.equal(a.labels, b.labels) and a.skipped == b.skipped)


def test_hit_gives_identical_images_without_decoding(folder, tmp_path, monkeypatch):
    first = cached_folder_source(folder, 16, tmp_path / "cache")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the cache is valid")
    monkeypatch.setattr("selfsup.data.cache.load_folder_source", no_decoding)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = cached_folder_source(folder, 16, tmp_path / "cache")
    assert same_source(first, second)
    assert first.images.shape == (4, 3, 16, 16) and first.labels.tolist() == [0, 0, 0, 1]


def test_folder_changes_invalidate(folder, tmp_path):
    cache = tmp_path / "cache"
    before = cached_folder_source(folder, 16, cache)
    save(folder / "dog" / "b.png", seed=5)  # a new file
    added = cached_folder_source(folder, 16, cache)
    assert len(added) == len(before) + 1 and "dog/b.png" in added.ids

    save(folder / "cat" / "0.png", seed=42)  # a file replaced in place
    stat = (folder / "cat" / "0.png").stat()
    os.utime(folder / "cat" / "0.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    replaced = cached_folder_source(folder, 16, cache)
    assert not torch.equal(replaced.images[0], added.images[0])
    assert len(list(cache_location(folder, cache, 16).glob("images-*.npy"))) == 1  # old arrays removed

    other_size = cached_folder_source(folder, 8, cache)
    assert other_size.images.shape[-1] == 8


@pytest.mark.parametrize("damage", ["index", "array"])
def test_corrupt_cache_is_rebuilt_with_a_warning(folder, tmp_path, damage):
    cache = tmp_path / "cache"
    first = cached_folder_source(folder, 16, cache)
    where = cache_location(folder, cache, 16)
    target = where / "index.json" if damage == "index" else next(where.glob("images-*.npy"))
    target.write_bytes(target.read_bytes()[:40])
    with pytest.warns(UserWarning, match="unreadable"):
        rebuilt = cached_folder_source(folder, 16, cache)
    assert same_source(first, rebuilt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert same_source(first, cached_folder_source(folder, 16, cache))  # repaired


def test_skipped_files_are_remembered(folder, tmp_path):
    (folder / "dog" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.warns(UserWarning, match="skipped 1"):
        first = cached_folder_source(folder, 16, tmp_path / "cache")
    second = cached_folder_source(folder, 16, tmp_path / "cache")
    assert second.skipped == first.skipped and len(second.skipped) == 1


def test_pretrain_reads_image_folders_through_the_cache(folder, tmp_path):
    from selfsup.config import PretrainConfig
    from selfsup.train.run import prepare_data

    cache = tmp_path / "cache"
    source, _, _ = prepare_data(PretrainConfig(data=str(folder), image_size=16, cache_dir=str(cache)))
    assert len(source) == 4 and (cache_location(folder, cache, 16) / "index.json").exists()


def test_builtin_datasets_bypass_the_cache(tmp_path):
    from selfsup.modalities import open_source

    assert len(open_source("digits", 8, cache_dir=tmp_path / "cache")) == 1797
    assert not (tmp_path / "cache").exists()
