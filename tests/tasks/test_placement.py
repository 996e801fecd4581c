"""Every command after training takes --accelerator/--devices; by default it runs where the
run was trained (here: the CPU, in the run's precision)."""

import json

import numpy as np
import pytest

from selfsup.cli import build_parser, run
from selfsup.runs import load_run, run_placement

AFTER_TRAINING = ("evaluate", "embed", "report", "neighbors", "dedupe", "cluster", "curate", "finetune", "adapt")


@pytest.mark.parametrize("command", AFTER_TRAINING)
def test_command_takes_accelerator_and_devices(command):
    sub = next(a for a in build_parser()._actions if isinstance(getattr(a, "choices", None), dict))
    options = {o for action in sub.choices[command]._actions for o in action.option_strings}
    assert {"--accelerator", "--devices"} <= options


def test_embed_defaults_to_the_runs_device_and_precision(digits_run, tmp_path, capsys):
    config, _ = load_run(digits_run)
    where = run_placement(config)
    assert where.device.type == config.accelerator == "cpu"
    assert (where.dtype is not None) == (config.precision == "bf16-mixed")  # bf16 where this CPU has it
    run(["embed", str(digits_run), "--out", str(tmp_path / "default.npy")])
    run(["embed", str(digits_run), "--out", str(tmp_path / "cpu.npy"), "--accelerator", "cpu", "--devices", "1"])
    assert np.array_equal(np.load(tmp_path / "default.npy"), np.load(tmp_path / "cpu.npy"))
    capsys.readouterr()
    run(["evaluate", str(digits_run), "--quick", "--accelerator", "cpu"])
    result = json.loads(capsys.readouterr().out)
    assert result["placement"] == str(where)
    summary = json.loads((digits_run / "summary.json").read_text())
    assert abs(result["knn_top1"] - summary["knn_top1"]) < 1e-6  # the same numbers as pretrain's own evaluation
