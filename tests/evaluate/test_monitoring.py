import json
import os

import pytest
import torch
from torch import nn

from selfsup import augment
from selfsup.config import PretrainConfig
from selfsup.tasks import pretrain
from selfsup.evaluate.monitoring import CollapseWarning, RepresentationMonitor, is_collapsed


class Constant(nn.Module):
    dim = 8

    def forward(self, x):
        return torch.ones(len(x), 8) + 0 * x.mean()


class Spread(nn.Module):
    dim = 8

    def __init__(self):
        super().__init__()
        self.project = nn.Linear(3 * 16 * 16, 8)

    def forward(self, x):
        return self.project(x.flatten(1))


def monitor_for(images):
    return RepresentationMonitor(images, [0.5] * 3, [0.25] * 3, augment.create("simclr", 16), seed=0)


def test_collapse_alarm_fires_on_a_constant_embedding_only():
    images = torch.randint(0, 256, (200, 3, 16, 16), dtype=torch.uint8)
    collapsed = monitor_for(images).measure(Constant(), "cpu")
    healthy = monitor_for(images).measure(Spread(), "cpu")
    assert is_collapsed(collapsed, 8) and collapsed["rankme"] < 1.01 and collapsed["alignment"] < 1e-10
    assert not is_collapsed(healthy, 8) and healthy["rankme"] > 6 and healthy["alignment"] > 0


def test_stop_on_collapse_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real = RepresentationMonitor.measure
    epochs_seen = []

    def collapses_at_epoch_two(self, backbone, device, *world):
        monitors = real(self, backbone, device, *world)
        epochs_seen.append(len(epochs_seen) + 1)
        if len(epochs_seen) >= 2:
            monitors.update(rankme=1.0, embedding_std=0.0)
        return monitors

    monkeypatch.setattr(RepresentationMonitor, "measure", collapses_at_epoch_two)
    out = tmp_path / "run"
    with pytest.warns(CollapseWarning, match="collapse after epoch 2"):
        summary = pretrain(PretrainConfig(data="digits", method="simclr", epochs=4, image_size=16,
                                          stop_on_collapse=True, report=False, out=str(out)))
    assert summary["collapsed_after_epoch"] == 2 and epochs_seen == [1, 2]
    assert os.readlink(out / "checkpoints" / "last") == "epoch-0001"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("rankme" in r and "uniformity" in r and "alignment" in r for r in records)


def test_monitor_handles_one_view_recipes():
    images = torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8)
    monitor = RepresentationMonitor(images, [0.5] * 3, [0.25] * 3, augment.create("rotnet", 16), seed=0)
    assert monitor.measure(Spread(), "cpu")["alignment"] > 0


def _measure_part(rank, world_size, images, state):
    backbone = Spread()
    backbone.load_state_dict(state)
    return monitor_for(images).measure(backbone, "cpu", rank, world_size)


@pytest.mark.parametrize("world_size", [2, 3])
def test_processes_split_the_monitors_and_get_what_one_process_gets(world_size):
    """Each process embeds its slice of the buffer (201 rows: uneven slices), views drawn as
    one process draws them; the gathered numbers are those of one process."""
    from tests.gloo import run_in_processes

    torch.manual_seed(0)
    images = torch.randint(0, 256, (201, 3, 16, 16), dtype=torch.uint8)
    backbone = Spread()
    expected = monitor_for(images).measure(backbone, "cpu")
    for result in run_in_processes(_measure_part, images, backbone.state_dict(), world_size=world_size):
        for name in ("rankme", "uniformity", "embedding_std", "alignment"):
            assert result[name] == pytest.approx(expected[name], rel=1e-5), name
