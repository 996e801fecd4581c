"""benchmarks/gpu_check.py runs on a machine without a GPU: its dry run takes every part's
code path (selfsup and its peers kornia, torchvision and Lightly) with tiny sizes."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run_prints_every_part(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result["dry_run"] and result["targets"] == "not measured (dry run)"
    for pipeline in ("selfsup", "kornia", "torchvision"):
        assert result["augmentation"][pipeline] > 0
    for method in ("simclr", "byol"):
        assert result["training"][method]["selfsup"] > 0 and result["training"][method]["lightly"] > 0
    assert result["overhead"]["overhead"] > 0
    assert 0 < result["cifar10"]["knn_top1"] <= 1 and (tmp_path / "run" / "summary.json").exists()
