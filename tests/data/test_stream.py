"""The streamed image folder: index, crops from the full image, training through workers."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.config import PretrainConfig
from selfsup.data import ImageSource
from selfsup.data.stream import StreamSource, crop_box, crop_views, index_folder, open_stream, view_generator
from selfsup.modalities import open_source
from selfsup.tasks import pretrain


def make_folder(root, per_class=24, corrupt=True):
    rng = np.random.default_rng(0)
    for c, name in enumerate(("cats", "dogs")):
        (root / name / "deeper").mkdir(parents=True)
        for i in range(per_class):
            w, h = (60, 36) if i % 2 else (36, 52)
            pixels = (rng.random((h, w, 3)) * 120).astype(np.uint8)
            pixels[..., c] += 120  # the class shows in one colour channel
            where = root / name / ("deeper" if i % 3 == 0 else "") / f"{i:03d}.jpg"
            Image.fromarray(pixels).save(where, quality=90)
    if corrupt:
        (root / "cats" / "broken.jpg").write_bytes(b"not an image")
    return root


def test_index_lists_every_image_below_with_first_level_labels(tmp_path):
    root = make_folder(tmp_path / "data")
    files, labels, classes = index_folder(root)
    expected = sorted(str(p.relative_to(root)) for p in root.rglob("*.jpg"))
    assert files == expected and classes == ["cats", "dogs"]
    assert labels.tolist() == [0 if f.startswith("cats") else 1 for f in files]


def test_crops_come_from_the_whole_image_and_depend_only_on_seed_epoch_index():
    width, height = 200, 50
    boxes = [crop_box(width, height, (0.08, 1.0), view_generator(0, 0, i, 0)) for i in range(400)]
    for left, top, right, bottom in boxes:
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
    # a centre crop of the short side (what decoding to a square keeps) spans x 75..125
    assert min(b[0] for b in boxes) < 20 and max(b[2] for b in boxes) > 180
    areas = [(r - l) * (b - t) / (width * height) for l, t, r, b in boxes]
    assert min(areas) >= 0.08 - 1e-9 and max(areas) <= 1.0


def test_views_of_a_file_replay_and_change_with_the_epoch(tmp_path):
    path = tmp_path / "x.jpg"
    Image.fromarray((np.random.default_rng(0).random((48, 80, 3)) * 255).astype(np.uint8)).save(path)
    views = [(16, (0.08, 1.0)), (16, (0.08, 1.0)), (8, (0.05, 0.4))]
    first = crop_views(path, views, seed=0, epoch=3, index=7)
    again = crop_views(path, views, seed=0, epoch=3, index=7)
    later = crop_views(path, views, seed=0, epoch=4, index=7)
    assert [v.shape for v in first] == [(3, 16, 16), (3, 16, 16), (3, 8, 8)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], later[0]) and not np.array_equal(first[0], first[1])
    assert "cannot decode" in crop_views(tmp_path / "missing.jpg", views, 0, 0, 0)


def test_lazy_samples_decode_as_the_in_memory_folder_does(tmp_path):
    root = make_folder(tmp_path / "data", per_class=4, corrupt=False)
    streamed = open_stream(root, 16)
    memory = open_source(str(root), 16)
    assert isinstance(memory, ImageSource) and streamed.ids == memory.ids
    assert torch.equal(streamed.samples[2:6], memory.samples[2:6])
    assert torch.equal(streamed.samples[torch.tensor([5, 1])], memory.samples[[5, 1]])
    assert streamed.samples.shape == memory.samples.shape and torch.equal(streamed.samples[3], memory.samples[3])


def test_auto_keeps_a_small_folder_in_memory(tmp_path):
    root = make_folder(tmp_path / "data", per_class=4, corrupt=False)
    assert isinstance(open_source(str(root), 16, data_mode="auto"), ImageSource)
    assert isinstance(open_source(str(root), 16, data_mode="stream"), StreamSource)


@pytest.fixture(scope="module")
def streamed_runs(tmp_path_factory):
    root = make_folder(tmp_path_factory.mktemp("stream") / "data")
    runs = []
    for name in ("a", "b"):
        out = root.parent / name
        with pytest.warns(UserWarning, match="broken.jpg"):
            summary = pretrain(PretrainConfig(data=str(root), data_mode="stream", workers=2, epochs=2, image_size=16,
                                              batch_size=16, report=False, log_every_n_steps=1, out=str(out)))
        runs.append((out, summary))
    return runs


def _losses(out):
    return [r["loss_step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if "loss_step" in r]


def test_stream_training_skips_a_corrupt_file_and_replays_exactly(streamed_runs):
    (a, summary), (b, _) = streamed_runs
    assert [s["file"] for s in summary["skipped"]] == [str(a.parent / "data" / "cats" / "broken.jpg")]
    assert (a / "skipped_files.txt").read_text().startswith(str(a.parent / "data" / "cats" / "broken.jpg") + "\t")
    assert summary["knn_top1"] is not None and summary["train_samples"] + summary["test_samples"] == 49
    assert len(_losses(a)) == 2 * (summary["train_samples"] // 16)
    assert _losses(a) == _losses(b)  # crops from (seed, epoch, index), in worker processes
    assert PretrainConfig.load(a / "config.yaml").workers == 2


class Killed(BaseException):
    """Stands for a hard kill in the middle of epoch 2."""


def test_stream_resume_after_a_kill_replays_the_uninterrupted_run(streamed_runs, tmp_path, monkeypatch):
    from selfsup.train.module import PretrainModule

    (a, summary), _ = streamed_runs
    per_epoch = summary["train_samples"] // 16

    def dies(self, batch, batch_idx):
        if self.global_step == per_epoch + 1:  # epoch 1 checkpointed, one step of epoch 2 logged
            raise Killed

    config = PretrainConfig.load(a / "config.yaml")
    root, out = config.data, tmp_path / "killed"
    options = dict(data=root, data_mode="stream", workers=2, epochs=2, image_size=16, batch_size=16, report=False,
                   log_every_n_steps=1, out=str(out))
    monkeypatch.setattr(PretrainModule, "on_train_batch_start", dies, raising=False)
    with pytest.warns(UserWarning), pytest.raises(Killed):
        pretrain(PretrainConfig(**options))
    monkeypatch.undo()
    assert len(_losses(out)) == per_epoch + 1
    with pytest.warns(UserWarning, match="broken.jpg"):
        pretrain(PretrainConfig(**options, resume=True))
    assert _losses(out) == _losses(a)  # the same crops, order and draws after the resume


def test_max_steps_stops_the_run(tmp_path):
    out = tmp_path / "run"
    pretrain(PretrainConfig(data="digits", epochs=3, max_steps=3, image_size=16, batch_size=256, report=False,
                            log_every_n_steps=1, out=str(out)))
    steps = [r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss_step" in r]
    assert steps == [0, 1, 2]


def tiff_folder(root, count=12, channels=5, odd=None):
    import tifffile

    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        shape = (channels, 30, 44) if i % 2 else (channels, 40, 28)  # 16-bit planes, wide and tall
        tifffile.imwrite(root / f"{i:02d}.tif", rng.integers(0, 65536, shape, dtype=np.uint16),
                         photometric="minisblack")
    if odd:
        Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(root / odd)
    return root


def test_tiff_stacks_stream_with_their_channels(tmp_path):
    root = tiff_folder(tmp_path / "bands", odd="rgb.png")
    streamed = open_source(str(root), 16, data_mode="stream")
    memory = open_source(str(root), 16, data_mode="memory")
    assert isinstance(streamed, StreamSource) and streamed.channels == 5 and streamed.input_shape == [5, 16, 16]
    with pytest.warns(UserWarning, match="rgb.png: 3 channels, the images here have 5"):
        samples = streamed.samples[:]
    assert samples.shape == (13, 5, 16, 16)
    assert torch.equal(samples[:12], memory.samples)  # the evaluation view decodes as the in-memory folder
    assert [f for f, _ in streamed.skipped] == [str(root / "rgb.png")]
    views = [(16, (0.08, 1.0)), (8, (0.05, 0.4))]
    first = crop_views(root / "01.tif", views, seed=0, epoch=0, index=1, channels=5)
    assert [v.shape for v in first] == [(5, 16, 16), (5, 8, 8)] and all(v.dtype == np.uint8 for v in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, crop_views(root / "01.tif", views, 0, 0, 1, 5)))
    assert not np.array_equal(first[0], crop_views(root / "01.tif", views, 0, 1, 1, 5)[0])
    assert crop_views(root / "rgb.png", views, 0, 0, 0, channels=5) == "3 channels, the images here have 5"
    whole = crop_views(root / "01.tif", [(44, (1.0, 1.0))], 0, 0, 1, 5)[0]  # scale 1: the whole 44x30 image
    assert abs(float(whole.mean()) - float(memory.samples[1].float().mean())) < 3


def test_tiff_stacks_train_in_stream_mode(tmp_path):
    root = tiff_folder(tmp_path / "bands", count=16)
    summary = pretrain(PretrainConfig(data=str(root), data_mode="stream", workers=1, epochs=1, image_size=16,
                                      batch_size=8, report=False, out=str(tmp_path / "run")))
    saved = PretrainConfig.load(tmp_path / "run" / "config.yaml")
    assert saved.input_shape == [5, 16, 16] and len(saved.mean) == 5 and summary["skipped_files"] == 0
