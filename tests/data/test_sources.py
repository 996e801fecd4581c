import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.data import DataError, holdout_split
from selfsup.modalities import open_source


def save(path, mode="RGB", size=(20, 20), fmt=None, seed=0):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(array)
    if mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE)
    elif mode != "RGB":
        image = image.convert(mode)
    image.save(path, format=fmt)
    return path


def make_bad_files(folder):
    good = save(folder / "cat" / "z.jpg")
    truncated = folder / "cat" / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:200])
    (folder / "dog" / "empty.png").parent.mkdir(parents=True, exist_ok=True)
    (folder / "dog" / "empty.png").write_bytes(b"")
    (folder / "dog" / "notes.png").write_text("this is not an image")
    return {str(truncated), str(folder / "dog" / "empty.png"), str(folder / "dog" / "notes.png")}


def test_folder_modes_formats_labels_and_bad_files(tmp_path):
    save(tmp_path / "cat" / "a.png", "L")
    save(tmp_path / "cat" / "b.gif", "P")
    save(tmp_path / "dog" / "c.webp", "RGBA", fmt="WEBP")
    save(tmp_path / "dog" / "deep" / "d.bmp", size=(30, 20))
    bad = make_bad_files(tmp_path)
    with pytest.warns(UserWarning, match="skipped 3 unreadable"):
        source = open_source(str(tmp_path), image_size=16)
    assert source.images.shape == (5, 3, 16, 16) and source.images.dtype == torch.uint8
    assert source.classes == ["cat", "dog"]
    assert source.labels.tolist() == [0, 0, 0, 1, 1]
    assert source.ids[0] == "cat/a.png"
    assert {f for f, _ in source.skipped} == bad
    assert all(reason for _, reason in source.skipped)


def test_default_size_is_median_short_side(tmp_path):
    for i, size in enumerate([(20, 24), (24, 24), (40, 28)]):
        save(tmp_path / f"{i}.png", size=size)
    source = open_source(str(tmp_path))
    assert source.image_size == 24 and source.labels is None


def test_folder_of_only_bad_files_is_a_clear_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "b.png").write_text("nope")
    with pytest.raises(DataError, match="none of the 2 image files"):
        open_source(str(tmp_path), image_size=16)


def test_empty_folder_and_missing_path(tmp_path):
    with pytest.raises(DataError, match="no image files"):
        open_source(str(tmp_path))
    with pytest.raises(DataError, match="no such file or folder"):
        open_source(str(tmp_path / "missing"))


def test_array_sources(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (10, 12, 12), dtype=np.uint8)
    np.save(tmp_path / "grey.npy", grey)
    source = open_source(str(tmp_path / "grey.npy"))
    assert source.images.shape == (10, 3, 12, 12) and source.labels is None
    assert torch.equal(source.images[:, 0], torch.from_numpy(grey))

    rgb = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "rgb.npz", images=rgb, labels=np.array(["a", "b"] * 3))
    source = open_source(str(tmp_path / "rgb.npz"), image_size=16)
    assert source.images.shape == (6, 3, 16, 16)
    assert source.classes == ["a", "b"] and source.labels.tolist() == [0, 1] * 3


@pytest.mark.parametrize("array, message", [
    (np.full((4, 8, 8, 3), 2.0, dtype=np.float32), r"float images must hold values in \[0, 1\]"),  # float rank 4
    (np.zeros((4, 8, 8, 3), dtype=np.int16), "images must be uint8, uint16 or float in"),
    (np.zeros((4, 8), dtype=np.uint8), "shape"),
    (np.zeros((0, 8, 8), dtype=np.uint8), "no images"),
])
def test_bad_arrays_are_clear_errors(tmp_path, array, message):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(DataError, match=message):
        open_source(str(tmp_path / "x.npy"))


def test_digits_and_fixed_stratified_holdout():
    source = open_source("digits")
    assert source.images.shape == (1797, 3, 32, 32)
    train, test = holdout_split(source, 0.2)
    again, _ = holdout_split(source, 0.2)
    assert len(test) == 360 and train.ids == again.ids
    assert not set(train.ids) & set(test.ids)
    assert torch.bincount(test.labels).min() >= 35  # every class present in proportion
