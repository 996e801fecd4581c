"""WebDataset shards: `selfsup pack` writes them, --data reads them with random access."""

import json
import tarfile

import pytest
import torch

from selfsup.cli import run
from selfsup.config import PretrainConfig
from selfsup.data import DataError, ImageSource
from selfsup.data.shards import open_shards, pack_folder
from selfsup.data.stream import StreamSource
from selfsup.modalities import open_source
from selfsup.tasks import pretrain
from tests.data.test_stream import make_folder


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = make_folder(tmp_path_factory.mktemp("shards") / "data")  # 48 images in 2 classes + 1 corrupt
    out = root.parent / "shards"
    done = pack_folder(root, out, shard_size=20)  # bytes copied as they are: the corrupt one too
    return root, out, done


def test_pack_writes_webdataset_shards_with_labels(packed):
    root, out, done = packed
    assert done["images"] == 49 and done["shards"] == 3 and done["classes"] == ["cats", "dogs"]
    with tarfile.open(out / "000000.tar") as tar:
        names = tar.getnames()
    assert sorted(names[:2]) == ["000000000.cls", "000000000.jpg"] and len(names) == 40
    import webdataset as wds  # the shards read back with webdataset's own reader

    samples = list(wds.WebDataset(str(out / "000000.tar"), shardshuffle=False))
    assert len(samples) == 20 and samples[0]["cls"] == b"0"
    assert json.loads((out / "classes.json").read_text()) == ["cats", "dogs"]
    with pytest.raises(DataError, match="already holds shards"):
        pack_folder(root, out)


def test_shards_read_as_the_folder_with_random_access(packed):
    root, out, _ = packed
    streamed = open_shards(str(out), 16)
    folder = open_source(str(root), 16, data_mode="stream")
    assert len(streamed) == len(folder) == 49
    assert streamed.labels.tolist() == folder.labels.tolist() and streamed.classes == ["cats", "dogs"]
    good = [i for i, f in enumerate(folder.files) if "broken" not in f][:5]
    order = sorted(folder.files)
    assert order == folder.files  # packed in the index's order
    rows = torch.tensor(good)
    assert torch.equal(streamed.samples[rows], folder.samples[rows])
    pattern = open_source(str(out / "{000000..000002}.tar"), 16, data_mode="stream")
    assert isinstance(pattern, StreamSource) and len(pattern) == 49
    assert isinstance(open_source(str(out), 16, data_mode="memory"), ImageSource)
    with pytest.raises(DataError, match="000003.tar: no such shard"):
        open_source(str(out / "{000000..000003}.tar"), 16)


def test_training_on_shards_skips_the_corrupt_member_and_continues(packed, tmp_path):
    _, out, _ = packed
    with pytest.warns(UserWarning, match=r"\d{6}.tar:\d{9}.jpg: cannot decode"):
        summary = pretrain(PretrainConfig(data=str(out), data_mode="stream", workers=2, epochs=1, image_size=16,
                                          batch_size=16, report=False, out=str(tmp_path / "run")))
    assert summary["knn_top1"] is not None and summary["train_samples"] + summary["test_samples"] == 49


def test_pack_command(tmp_path, capsys):
    root = make_folder(tmp_path / "data", per_class=3, corrupt=False)
    run(["pack", str(root), "--out", str(tmp_path / "shards"), "--image-size", "16"])
    assert "wrote 6 images in 1 shard(s)" in capsys.readouterr().out
    assert open_shards(str(tmp_path / "shards")).image_size == 16
