"""Issue 18, parts 4-5: TIFF, 16-bit and N-channel images, and no silent misreads (an
ambiguous array needs the modality; ID and free-text columns dropped; stray text in a
numeric column is missing, not 32 one-hot columns)."""

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.augment import ops
from selfsup.augment.recipes import create
from selfsup.backbones import create as create_backbone
from selfsup.config import ConfigError, PretrainConfig
from selfsup.data import DataError
from selfsup.modalities import open_source


def tiff_stack(path, channels=5, side=20, seed=0, planar=False):
    import tifffile

    rng = np.random.default_rng(seed)
    planes = rng.integers(0, 65536, (channels, side, side), dtype=np.uint16)
    tifffile.imwrite(path, planes, photometric="minisblack", **({"planarconfig": "separate"} if planar else {}))
    return planes


def test_tiff_stacks_keep_their_channels_16_bit_scaled(tmp_path):
    import tifffile

    planes = [tiff_stack(tmp_path / f"{i}.tif", planar=i % 2 == 1, seed=i) for i in range(3)]
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((20, 20, 3), np.uint8), photometric="rgb")
    tifffile.imwrite(tmp_path / "float.tif", np.zeros((5, 20, 20), np.float32), photometric="minisblack")
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        source = open_source(str(tmp_path))  # default size: the median short side, 20
    assert source.images.shape == (3, 5, 20, 20) and source.images.dtype == torch.uint8
    assert source.ids == ["0.tif", "1.tif", "2.tif"]  # pages (QYX) and samples (SYX) alike
    expected = np.rint(planes[1] / 257).astype(np.uint8)
    assert np.array_equal(source.images[1].numpy(), expected)
    reasons = dict(source.skipped)
    assert reasons[str(tmp_path / "rgb.tif")] == "3 channels, most images here have 5"
    assert "float32 samples" in reasons[str(tmp_path / "float.tif")]
    mean, std = __import__("selfsup.modalities", fromlist=["get"]).get("image").statistics(source.samples)
    assert len(mean) == len(std) == 5


def test_16_bit_png_keeps_its_range(tmp_path):
    values = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)  # 0 .. 65472
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    source = open_source(str(tmp_path))
    pixels = source.images[0]
    assert pixels.shape == (3, 32, 32) and torch.equal(pixels[0], pixels[2])  # grey repeated to 3
    assert np.array_equal(pixels[0].numpy(), np.rint(values / 257).astype(np.uint8))
    assert float((pixels == 255).float().mean()) < 0.01  # clipped at 255, 99.6% would be


def test_16_bit_rgb_png_keeps_its_range(tmp_path):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = np.zeros((8, 8, 3), ">u2")
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = 65535, 32896, 257
    rows = b"".join(b"\x00" + row.tobytes() for row in pixels)  # filter type 0 per row
    (tmp_path / "rgb48.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 16, 2, 0, 0, 0))
                                         + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    assert open_source(str(tmp_path)).images[0, :, 0, 0].tolist() == [255, 128, 1]  # value / 257


def test_arrays_channels_bit_depth_and_float_range(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "bands.npy", rng.integers(0, 65536, (4, 13, 16, 16), dtype=np.uint16))  # (N, C, H, W)
    source = open_source(str(tmp_path / "bands.npy"))
    assert source.images.shape == (4, 13, 16, 16)
    np.save(tmp_path / "last.npy", rng.integers(0, 256, (4, 16, 16, 6), dtype=np.uint8))  # (N, H, W, C)
    assert open_source(str(tmp_path / "last.npy")).images.shape == (4, 6, 16, 16)
    np.save(tmp_path / "rgba.npy", rng.integers(0, 256, (4, 16, 16, 4), dtype=np.uint8))
    assert open_source(str(tmp_path / "rgba.npy")).images.shape == (4, 3, 16, 16)  # alpha dropped
    np.save(tmp_path / "unit.npy", np.full((2, 8, 8, 3), 0.5, np.float32))
    assert open_source(str(tmp_path / "unit.npy")).images.unique().tolist() == [128]
    np.save(tmp_path / "standardised.npy", np.full((2, 8, 8, 3), -1.5, np.float32))
    with pytest.raises(DataError, match=r"standardised.npy: float images must hold values in \[0, 1\].*\[-1.5, -1.5\]"):
        open_source(str(tmp_path / "standardised.npy"))


def test_ambiguous_float_array_needs_the_modality(tmp_path):
    frames = np.random.default_rng(0).random((6, 16, 16)).astype(np.float32)
    path = tmp_path / "frames.npy"
    np.save(path, frames)
    with pytest.raises(DataError) as error:
        open_source(str(path))
    line = str(error.value)
    assert "\n" not in line and "float32 array of shape (6, 16, 16)" in line
    assert line.endswith("pass --modality image or --modality timeseries")
    images = open_source(str(path), modality="image")
    assert images.modality == "image" and images.images.shape == (6, 3, 16, 16)
    series = open_source(str(path), modality="timeseries")
    assert series.modality == "timeseries" and series.samples.shape == (6, 16, 16)
    np.save(tmp_path / "sensors.npy", frames[:, :6])  # (6, 6, 16): 6 channels, 16 steps
    assert open_source(str(tmp_path / "sensors.npy")).modality == "timeseries"
    with pytest.raises(DataError, match="digits: a built-in image dataset, not timeseries"):
        open_source("digits", modality="timeseries")


def test_pretrain_refuses_the_ambiguous_array_then_trains_with_modality(tmp_path):
    from selfsup.tasks import pretrain

    np.save(tmp_path / "frames.npy", np.random.default_rng(0).random((16, 16, 16)).astype(np.float32))
    config = dict(data=str(tmp_path / "frames.npy"), method="simclr", epochs=1, batch_size=8, report=False)
    with pytest.raises(DataError, match="pass --modality image or --modality timeseries"):
        pretrain(PretrainConfig(out=str(tmp_path / "refused"), **config))
    with pytest.raises(ConfigError, match="modality='video': expected image, table or timeseries"):
        pretrain(PretrainConfig(out=str(tmp_path / "bad"), modality="video", **config))
    pretrain(PretrainConfig(out=str(tmp_path / "run"), modality="timeseries", **config))
    saved = PretrainConfig.load(tmp_path / "run" / "config.yaml")
    assert saved.modality == "timeseries" and saved.input_shape == [16, 16]


def test_five_channel_tiff_folder_trains_simclr(tmp_path):
    from selfsup.tasks import pretrain

    from selfsup.augment import recipes

    recipes._WARNED_CHANNELS.clear()  # the warning comes once per process and channel count
    (tmp_path / "data").mkdir()
    for i in range(12):
        tiff_stack(tmp_path / "data" / f"{i}.tif", seed=i)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pretrain(PretrainConfig(data=str(tmp_path / "data"), method="simclr", epochs=1, batch_size=8,
                                image_size=16, out=str(tmp_path / "run"), report=False))
    assert any("5 channels, not RGB" in str(w.message) for w in caught)
    saved = PretrainConfig.load(tmp_path / "run" / "config.yaml")
    assert saved.input_shape == [5, 16, 16] and len(saved.mean) == len(saved.std) == 5
    assert saved.backbone == "smallcnn"
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    from selfsup.export import export_run

    info = export_run(tmp_path / "run", "safetensors", tmp_path / "exported")  # rebuilt from config.yaml
    assert info["input_shape"] == [5, 16, 16]
    assert sum("loss_epoch" in m for m in metrics) == 1 and all(np.isfinite(m["loss_epoch"]) for m in metrics if "loss_epoch" in m)


def test_views_of_non_rgb_images_jitter_each_channel():
    images = torch.full((64, 5, 16, 16), 0.5)
    images[:, :, :8] = 0.25
    jittered = ops.channel_jitter(images, torch.Generator().manual_seed(0), 1.0, 0.8, 0.8)
    means = jittered.mean(dim=(2, 3))  # brightness: per sample and channel, not one factor for all
    assert (means.std(dim=1) > 0.01).all() and jittered.min() >= 0 and jittered.max() <= 1
    views = create("simclr", 16)(images.mul(255).to(torch.uint8), torch.Generator().manual_seed(0),
                                 [0.5] * 5, [0.2] * 5)
    assert [tuple(v.shape) for v in views] == [(64, 5, 16, 16)] * 2


@pytest.mark.parametrize("name", ["smallcnn", "resnet18", "vit_mini", "timm/resnet10t"])
def test_backbones_take_c_channels(name):
    backbone = create_backbone(name, image_size=16, input_shape=[5, 16, 16])
    assert backbone(torch.zeros(2, 5, 16, 16)).shape == (2, backbone.dim)


def test_torchvision_backbone_refuses_c_channels_in_one_line():
    with pytest.raises(ConfigError, match=r"^backbone=torchvision/resnet18: torchvision models take 3-channel "
                                          r"images, the data has 5 channels; use a built-in backbone"):
        create_backbone("torchvision/resnet18", image_size=16, input_shape=[5, 16, 16])


def test_table_drops_id_and_free_text_columns_and_keeps_numbers_with_a_stray(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["id,comment,x,colour,count"]
    for i in range(200):
        x = "?" if i == 16 else f"{rng.normal():.3f}"
        rows.append(f"{1000 + i},note {rng.integers(10**6)},{x},{['red', 'blue'][i % 2]},{rng.integers(0, 10**6)}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source = open_source(str(tmp_path / "t.csv"))
    messages = [str(w.message) for w in caught]
    assert "t.csv: column 'x': 1 non-numeric value ('?' at row 17) treated as missing" in messages
    dropped = next(m for m in messages if "dropped" in m)
    assert "'id' (integers unique per row: an ID)" in dropped and "'comment' (text, " in dropped
    assert "count" not in dropped  # unique integers, not consecutive and not named as an ID: a feature
    assert source.features[0] == "x" and source.features[-1] == "count" and len(source.features) == 4
    assert source.samples.shape == (200, 4)
    assert source.samples[16, 0] == float(np.median(np.delete(source.samples[:, 0].numpy(), 16)))


def test_mostly_text_column_stays_categorical(tmp_path):
    rows = ["grade,y"] + [f"{['A', 'B', '3'][i % 3]},{i % 2}" for i in range(30)]  # a third are numbers
    (tmp_path / "g.csv").write_text("\n".join(rows) + "\n")
    source = open_source(str(tmp_path / "g.csv"), label_column="y")
    assert sorted(source.features) == ["grade=3", "grade=A", "grade=B"]


def test_image_modality_serves_c_channels():
    from selfsup.modalities import get

    image = get("image")
    samples = torch.randint(0, 256, (8, 5, 16, 16), dtype=torch.uint8)
    assert image.thumbnail(samples[0]).startswith("data:image/png;base64,")
    for kind in ("noise", "blur", "contrast"):
        corrupted = image.corrupt(samples, kind, severity=5)
        assert corrupted.shape == samples.shape and not torch.equal(corrupted, samples)
    contrast = image.corrupt(samples, "contrast", severity=5).float()
    assert (contrast.std(dim=(2, 3)) < samples.float().std(dim=(2, 3))).all()  # each channel flattened
    weak, strong = image.fixmatch_views(16, None, None)
    generator = torch.Generator().manual_seed(0)
    assert weak(samples, generator).shape == strong(samples, generator).shape == (8, 5, 16, 16)
