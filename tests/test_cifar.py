"""Real image folders: CIFAR-10 JPEGs from ../shared/data (skipped when absent)."""

import os
import tarfile
from pathlib import Path

import pytest
import torch

from selfsup.config import PretrainConfig
from selfsup.modalities import open_source
from selfsup.tasks import pretrain

ARCHIVE = Path(os.environ.get("SELFSUP_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data")) \
    / "cifar10-jpg.tar.gz"


@pytest.fixture(scope="module")
def cifar_test_folder(tmp_path_factory):
    if not ARCHIVE.exists():
        pytest.skip(f"CIFAR-10 archive not found at {ARCHIVE} (set SELFSUP_DATA_DIR)")
    root = tmp_path_factory.mktemp("cifar")
    with tarfile.open(ARCHIVE) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith("cifar10-jpg/test/")]
        archive.extractall(root, members=members, filter="data")
    return root / "cifar10-jpg" / "test"


def test_cifar_folder_loads_with_class_labels(cifar_test_folder):
    source = open_source(str(cifar_test_folder))
    assert source.images.shape == (10_000, 3, 32, 32) and source.images.dtype == torch.uint8
    assert source.classes[:3] == ["airplane", "automobile", "bird"] and len(source.classes) == 10
    assert torch.bincount(source.labels).tolist() == [1000] * 10
    assert not source.skipped and source.ids[0].startswith("airplane/")


def test_byol_on_a_real_image_folder(cifar_test_folder, tmp_path):
    summary = pretrain(PretrainConfig(data=str(cifar_test_folder), method="byol", epochs=1,
                                      out=str(tmp_path / "run"), report=False, monitor_samples=256))
    assert summary["train_samples"] == 8000 and summary["test_samples"] == 2000
    assert 0.1 < summary["knn_top1"] <= 1 and summary["linear_top1"] is not None
    assert (tmp_path / "run" / "checkpoints" / "last" / "weights.safetensors").exists()
