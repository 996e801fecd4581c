"""Parquet files of encoded images in the Hugging Face ``datasets`` layout: an image column
of struct<bytes, path>, an integer label column, class names in the schema metadata."""

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from selfsup.config import PretrainConfig
from selfsup.data import DataError, ImageSource
from selfsup.data.stream import StreamSource
from selfsup.modalities import open_source
from selfsup.tasks import pretrain

FEATURES = {"image": {"_type": "Image"}, "label": {"names": ["cat", "dog"], "_type": "ClassLabel"}}


def encoded(pixels, kind="PNG"):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, kind)
    return buffer.getvalue()


def write_hf_parquet(path, count=20, with_paths=True, corrupt=None, folder=None, row_group_size=6):
    """The layout ``datasets.Dataset.to_parquet`` writes (checked against datasets 5.2), and
    the same images as a class folder when ``folder`` is given."""
    rng = np.random.default_rng(0)
    images, labels, paths = [], [], []
    for i in range(count):
        label = i % 2
        pixels = (rng.random((24, 36, 3) if i % 3 else (30, 22, 3)) * 120).astype(np.uint8)
        pixels[..., label] += 120
        data = b"not an image" if i == corrupt else encoded(pixels)
        images.append({"bytes": data, "path": f"{i:03d}.png" if with_paths else None})
        labels.append(label)
        if folder is not None and i != corrupt:
            (folder / ["cat", "dog"][label]).mkdir(parents=True, exist_ok=True)
            (folder / ["cat", "dog"][label] / f"{i:03d}.png").write_bytes(data)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({"image": pa.array(images, image_type), "label": pa.array(labels, pa.int64())})
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": FEATURES}})})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def test_hf_parquet_decodes_as_the_same_images_in_a_folder(tmp_path):
    folder = tmp_path / "folder"
    path = write_hf_parquet(tmp_path / "train.parquet", folder=folder)
    memory = open_source(str(path), 16)
    assert isinstance(memory, ImageSource) and memory.classes == ["cat", "dog"]
    assert memory.labels.tolist() == [i % 2 for i in range(20)]
    assert memory.ids[3] == f"{path}:003.png"  # the datasets' original paths name the rows
    reference = open_source(str(folder), 16)
    order = sorted(range(20), key=lambda i: (i % 2, i))  # the folder sorts by class, then name
    assert torch.equal(memory.images[order], reference.images)


def test_hf_parquet_streams_skips_a_corrupt_row_and_trains(tmp_path):
    path = write_hf_parquet(tmp_path / "train.parquet", count=24, with_paths=False, corrupt=5)
    streamed = open_source(str(path), 16, data_mode="stream")
    assert isinstance(streamed, StreamSource) and len(streamed) == 24 and streamed.ids[5] == f"{path}:5"
    with pytest.warns(UserWarning, match=r"train.parquet:5: cannot decode"):
        summary = pretrain(PretrainConfig(data=str(path), data_mode="stream", workers=1, epochs=1, image_size=16,
                                          batch_size=8, report=False, out=str(tmp_path / "run")))
    assert [s["file"] for s in summary["skipped"]] == [f"{path}:5"] and summary["knn_top1"] is not None
    memory = open_source(str(path), 16)  # in memory the corrupt row is dropped, and named
    assert len(memory) == 23 and f"{path}:5" not in memory.ids and memory.skipped[0][0] == f"{path}:5"


def test_a_table_parquet_stays_a_table_and_bad_image_parquets_are_named(tmp_path):
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "b": [0.5, 0.1, 0.2], "c": ["x", "y", "x"]}),
                   tmp_path / "table.parquet")
    assert open_source(str(tmp_path / "table.parquet")).modality == "table"
    two = pa.table({"left": [encoded(np.zeros((8, 8, 3), np.uint8))], "right": [b"x"]})
    pq.write_table(two, tmp_path / "two.parquet")
    with pytest.raises(DataError, match="several columns of encoded images"):
        open_source(str(tmp_path / "two.parquet"))
    text_labels = pa.table({"image": [encoded(np.zeros((8, 8, 3), np.uint8))], "label": ["cat"]})
    pq.write_table(text_labels, tmp_path / "text.parquet")
    with pytest.raises(DataError, match="label column 'label' holds string, not class indices"):
        open_source(str(tmp_path / "text.parquet"))


@pytest.mark.parametrize("data_mode", ["memory", "stream"])
def test_tiff_stacks_without_paths_are_read_as_their_planes(tmp_path, data_mode):
    """Rows with no original path have no suffix: their bytes say TIFF, so a 5-plane stack is 5
    channels, as in a folder of .tif files, not Pillow's first page read as RGB."""
    import tifffile

    rng = np.random.default_rng(0)
    stacks = [(rng.random((5, 20, 20)) * 255).astype(np.uint8) for _ in range(6)]
    blobs = []
    for planes in stacks:
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, planes, photometric="minisblack")
        blobs.append({"bytes": buffer.getvalue(), "path": None})
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    path = tmp_path / "stacks.parquet"
    pq.write_table(pa.table({"image": pa.array(blobs, image_type)}), path)
    source = open_source(str(path), 20, data_mode=data_mode)
    images = source.samples[:]
    assert images.shape == (6, 5, 20, 20)
    assert np.array_equal(np.asarray(images[2]), stacks[2])
