"""benchmarks/parity_lightly.py end to end on a tiny synthetic image folder: both sides
train, the kNN is finite, each run is one JSON line, and a second call skips them."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("lightly")


def make_folder(root: Path, per_class: dict[str, int]) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in per_class.items():
        for label, colour in (("red", 0), ("blue", 2)):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 90, (32, 32, 3), dtype=np.uint8)
                pixels[..., colour] += 160
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")


def load_script():
    spec = importlib.util.spec_from_file_location("parity_lightly", ROOT / "benchmarks" / "parity_lightly.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(script, monkeypatch, capsys, tmp_path, out, *extra) -> str:
    """The script's main() in this process (a subprocess spends most of its time importing)."""
    monkeypatch.setattr(sys, "argv", [
        "parity_lightly.py", "--data", str(tmp_path / "data"), "--methods", "simclr", "--seeds", "0", "--epochs", "1",
        "--train-size", "64", "--test-size", "16", "--batch-size", "32", "--threads", "1", "--workers", "0",
        "--accelerator", "cpu", "--work-dir", str(tmp_path / "work"), "--out", str(out), *extra])
    script.main()
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_parity_lightly_trains_both_sides_and_resumes(tmp_path, monkeypatch, capsys):
    make_folder(tmp_path / "data", {"train": 40, "test": 8})
    out = tmp_path / "results.jsonl"
    script = load_script()
    first = run(script, monkeypatch, capsys, tmp_path, out)
    assert "GPU available" not in first  # Lightning's notices silenced, as on the command line
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["method"], r["side"], r["seed"]) for r in rows] == [("simclr", "selfsup", 0), ("simclr", "lightly", 0)]
    assert all(0 <= r["knn_top1"] <= 1 and r["train_seconds"] > 0 for r in rows)
    again = run(script, monkeypatch, capsys, tmp_path, out)
    assert again.count("skip simclr") == 2 and len(out.read_text().splitlines()) == 2
    result = json.loads(next(line for line in again.splitlines() if line.startswith("RESULT ")).removeprefix("RESULT "))
    assert result["table"][0]["verdict"] in ("better", "within", "below")

    # a trial of a method option: one more selfsup line, keyed and tabled by its options
    trial = run(script, monkeypatch, capsys, tmp_path, out, "--set", "temperature=0.3", "--set", "weight_decay=5e-4",
                "--sides", "selfsup")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and rows[2]["options"] == {"temperature": 0.3, "weight_decay": 5e-4}
    assert rows[2]["settings"]["method_options"]["temperature"] == 0.3
    assert rows[2]["settings"]["weight_decay"] == 5e-4 != rows[0]["settings"]["weight_decay"]
    table = json.loads(next(line for line in trial.splitlines() if line.startswith("RESULT "))
                       .removeprefix("RESULT "))["table"][0]
    assert table["selfsup"] == [rows[2]["knn_top1"]] and table["lightly"] == [rows[1]["knn_top1"]]


def test_verdict_against_the_peers_seed_range():
    script = load_script()
    assert script.verdict([0.50, 0.52], [0.45, 0.50]) == "better"
    assert script.verdict([0.46, 0.48], [0.45, 0.50]) == "within"
    assert script.verdict([0.40, 0.44], [0.45, 0.50]) == "below"
    assert script.verdict([0.40], []) == "incomplete"
