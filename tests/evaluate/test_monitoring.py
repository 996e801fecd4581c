import json
import os

import pytest
import torch

from selfsup.config import PretrainConfig
from selfsup.tasks import pretrain
from selfsup.evaluate.monitoring import CollapseWarning, RepresentationMonitor, is_collapsed


def steps_of(z, paired=None, batch=50):
    """A monitor fed ``z`` (and its pairs) as steps of ``batch`` rows."""
    monitor = RepresentationMonitor(samples=len(z))
    for start in range(0, len(z), batch):
        out = {"loss": torch.tensor(0.0), "embeddings": z[start:start + batch]}
        if paired is not None:
            out["paired"] = paired[start:start + batch]
        monitor.record(out, global_batch=batch)
    return monitor


def test_collapse_alarm_fires_on_a_constant_embedding_only():
    torch.manual_seed(0)
    constant = steps_of(torch.ones(200, 8), torch.ones(200, 8))
    collapsed = constant.measure(*constant.rows())
    spread = torch.randn(200, 8)
    monitor = steps_of(spread, spread + 0.1 * torch.randn(200, 8))
    healthy = monitor.measure(*monitor.rows())
    assert is_collapsed(collapsed, 8) and collapsed["rankme"] < 1.01 and collapsed["alignment"] < 1e-10
    assert not is_collapsed(healthy, 8) and healthy["rankme"] > 6 and healthy["alignment"] > 0


def test_the_monitor_keeps_whole_last_steps_and_pairs_only_when_every_step_has_them():
    z = torch.randn(500, 4)
    monitor = RepresentationMonitor(samples=120)
    for start in range(0, 500, 50):
        monitor.record({"embeddings": z[start:start + 50], "paired": -z[start:start + 50]}, global_batch=50)
    kept, paired = monitor.rows()
    assert torch.equal(kept, z[-150:]) and torch.equal(paired, -z[-150:])  # 3 steps hold >= 120 rows
    monitor.record({"embeddings": z[:50]}, global_batch=50)  # a step without a second view
    assert monitor.rows()[1] is None


def test_stop_on_collapse_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real = RepresentationMonitor.measure
    epochs_seen = []

    def collapses_at_epoch_two(self, z, paired):
        monitors = real(self, z, paired)
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


@pytest.mark.parametrize("method, aligned", [("rotnet", False), ("byol", True)])
def test_training_logs_the_monitors_from_the_steps_own_embeddings(tmp_path, method, aligned):
    """One-view methods log RankMe without alignment; two-view methods log both."""
    out = tmp_path / "run"
    pretrain(PretrainConfig(data="digits", method=method, epochs=1, image_size=16, batch_size=256,
                            monitor_samples=256, report=False, out=str(out)))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    (epoch,) = [r for r in records if "rankme" in r]
    assert epoch["rankme"] > 2 and ("alignment" in epoch) == aligned


def _rows_of_part(rank, world_size, z, batch):
    """Each process keeps its slice of each global batch, as a torchrun job's ranks do."""
    monitor = RepresentationMonitor(samples=120)
    for start in range(0, len(z), batch):
        rows = z[start:start + batch]
        chunk = -(-len(rows) // world_size)
        monitor.record({"embeddings": rows[rank * chunk:(rank + 1) * chunk],
                        "paired": 2 * rows[rank * chunk:(rank + 1) * chunk]}, global_batch=batch)
    return monitor.measure(*monitor.rows(world_size))


@pytest.mark.parametrize("world_size", [2, 3])
def test_processes_gather_the_monitors_and_get_what_one_process_gets(world_size):
    """Uneven slices (a global batch of 50 over 3 processes, a last batch of 1): the
    gathered rows are one process's rows, so the numbers are too."""
    from tests.gloo import run_in_processes

    torch.manual_seed(0)
    z = torch.randn(501, 16)
    one = RepresentationMonitor(samples=120)
    for start in range(0, len(z), 50):
        one.record({"embeddings": z[start:start + 50], "paired": 2 * z[start:start + 50]}, global_batch=50)
    expected = one.measure(*one.rows())
    for result in run_in_processes(_rows_of_part, z, 50, world_size=world_size):
        for name in ("rankme", "uniformity", "embedding_std", "alignment"):
            assert result[name] == pytest.approx(expected[name], rel=1e-5), name
