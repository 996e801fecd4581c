import numpy as np
import pytest
import torch

from selfsup.data import DataError, holdout_split
from selfsup import modalities
from selfsup.modalities import open_source
from selfsup.data.samples import model_input
from selfsup.data.timeseries import aeon_data_dir


def needs_aeon():
    try:
        aeon_data_dir()
    except DataError:
        pytest.skip("aeon (the UCR/UEA files) is not installed: pip install 'selfsup[timeseries]'")


def write_csv(path):
    path.write_text("size,colour,weight,kind\n"
                    "1.0,red,10,a\n"
                    "2.0,blue,,b\n"
                    ",red,30,a\n"
                    "4.0,,40,b\n")
    return path


def test_csv_numeric_categorical_missing_and_label_column(tmp_path):
    with pytest.warns(UserWarning, match=r"size: 1, colour: 1, weight: 1"):
        source = open_source(str(write_csv(tmp_path / "t.csv")), label_column="kind")
    assert source.modality == "table"
    assert source.features == ["size", "colour=red", "colour=(missing)", "colour=blue", "weight"]
    assert source.classes == ["a", "b"] and source.labels.tolist() == [0, 1, 0, 1]
    x = source.samples
    assert x[2, 0] == 2.0  # the median of 1, 2, 4
    assert x[1, 4] == 30.0  # the median of 10, 30, 40
    assert x[:, 1:4].sum(dim=1).tolist() == [1, 1, 1, 1]  # one-hot, missing a category of its own
    assert x[3, 2] == 1


def test_parquet_and_bad_label_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "y": ["x", "y", "x"]}), tmp_path / "t.parquet")
    source = open_source(str(tmp_path / "t.parquet"), label_column="y")
    assert source.samples.shape == (3, 1) and source.classes == ["x", "y"]
    with pytest.raises(DataError, match=r"t.parquet: no column 'label' for the labels; columns: a, y"):
        open_source(str(tmp_path / "t.parquet"), label_column="label")


def test_ts_file_unequal_lengths_missing_values_and_labels(tmp_path):
    path = tmp_path / "toy.ts"
    path.write_text("# a comment\n@problemName toy\n@univariate false\n@dimensions 2\n@equalLength false\n"
                    "@classLabel true up down\n@data\n"
                    "0,1,2,3:0,2,4,6:up\n"
                    "3,?,1:6,4,2:down\n")
    with pytest.warns(UserWarning, match="1 series of unequal length resampled to 4 steps; 1 missing"):
        source = open_source(str(path))
    assert source.modality == "timeseries" and source.samples.shape == (2, 2, 4)
    assert source.classes == ["down", "up"] and source.labels.tolist() == [1, 0]
    # the 3-step series stretched to 4 steps by linear interpolation, the gap filled first
    assert torch.allclose(source.samples[1, 0], torch.tensor([3.0, 2 + 1 / 3, 1 + 2 / 3, 1.0]))


def test_float_arrays_are_series_and_uint8_arrays_stay_images(tmp_path):
    series = np.random.default_rng(0).normal(size=(6, 20)).astype(np.float32)
    np.save(tmp_path / "s.npy", series)
    source = open_source(str(tmp_path / "s.npy"))
    assert source.modality == "timeseries" and source.samples.shape == (6, 1, 20)
    np.savez(tmp_path / "s.npz", x=series.reshape(6, 2, 10), y=np.array([0, 1] * 3))
    source = open_source(str(tmp_path / "s.npz"))
    assert source.samples.shape == (6, 2, 10) and source.labels.tolist() == [0, 1] * 3
    np.save(tmp_path / "i.npy", np.zeros((2, 8, 8), dtype=np.uint8))
    assert open_source(str(tmp_path / "i.npy")).modality == "image"
    np.save(tmp_path / "bad.npy", np.zeros((2, 2, 2, 2), dtype=np.float32))
    with pytest.raises(DataError, match=r"bad.npy: images must have shape \(N, H, W\), \(N, H, W, C\) or \(N, C, H, W\)"):
        open_source(str(tmp_path / "bad.npy"))


def test_builtin_tables_split_and_standardise():
    source = open_source("breast_cancer")
    assert source.samples.shape == (569, 30) and source.classes == ["malignant", "benign"]
    train, test = holdout_split(source, 0.2)
    assert len(train) + len(test) == 569 and train.modality == test.modality == "table"
    mean, std = modalities.get(train.modality).statistics(train.samples)
    x = model_input(train.samples, mean, std)
    assert torch.allclose(x.mean(0), torch.zeros(30), atol=1e-4) and torch.allclose(x.std(0), torch.ones(30), atol=1e-3)


def test_builtin_archive_series():
    needs_aeon()
    assert open_source("GunPoint").samples.shape == (200, 1, 150)
    assert open_source("BasicMotions").samples.shape == (80, 6, 100)
    with pytest.warns(UserWarning, match="JapaneseVowels: 639 series of unequal length resampled to 29"):
        vowels = open_source("JapaneseVowels")
    assert vowels.samples.shape == (640, 12, 29) and len(vowels.classes) == 9


def test_builtin_archive_splits_are_the_archive_files():
    """``NAME_TRAIN`` and ``NAME_TEST`` are the archive's own split (TS2Vec's protocol pretrains
    on TRAIN and reports accuracy on TEST); ``NAME`` joins them, TRAIN first."""
    needs_aeon()
    train, test, joined = (open_source(name) for name in ("GunPoint_TRAIN", "GunPoint_TEST", "GunPoint"))
    assert train.samples.shape == (50, 1, 150) and test.samples.shape == (150, 1, 150)
    assert torch.equal(torch.cat([train.samples, test.samples]), joined.samples)
    assert train.classes == test.classes == joined.classes
    assert torch.equal(torch.cat([train.labels, test.labels]), joined.labels)
    assert open_source("BasicMotions_TEST").samples.shape == (40, 6, 100)


def test_a_run_resamples_unequal_series_to_its_own_length():
    """JapaneseVowels' TRAIN file resamples to its longest, 26 steps, the TEST file to 29: a run
    trained on TRAIN embeds TEST resampled to 26 from the series as read, as it trained."""
    from types import SimpleNamespace

    from selfsup.data.timeseries import aeon_data_dir, fill_and_resample, read_ts
    from selfsup.tasks.common import open_run_source

    needs_aeon()
    with pytest.warns(UserWarning):
        assert open_source("JapaneseVowels_TRAIN").samples.shape == (270, 12, 26)
    run = SimpleNamespace(image_size=None, label_column=None, modality="timeseries", input_shape=[12, 26])
    with pytest.warns(UserWarning, match="resampled to the run's 26 steps"):
        test = open_run_source("JapaneseVowels_TEST", run)
    series, _ = read_ts(aeon_data_dir() / "JapaneseVowels" / "JapaneseVowels_TEST.ts")
    assert torch.equal(test.samples, torch.from_numpy(fill_and_resample(series, 26)[0]))
    equal = SimpleNamespace(image_size=None, label_column=None, modality="timeseries", input_shape=[1, 100])
    assert open_run_source("GunPoint_TEST", equal).samples.shape == (150, 1, 150)  # equal lengths: as they are
