"""Experiment trackers (--logger), progress output and the CLI's start-up imports."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from selfsup.cli import run
from selfsup.config import ConfigError, PretrainConfig, validate
from selfsup.tasks import pretrain
from selfsup.train.loggers import check_loggers

TINY = dict(data="digits", method="simclr", epochs=1, image_size=16, batch_size=256, report=False,
            monitor_samples=256, log_every_n_steps=1)


def test_csv_and_tensorboard_get_the_metrics_and_the_configuration_once(tmp_path):
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    run(["pretrain", "--data", "digits", "--epochs", "1", "--image-size", "16", "--no-report",
         "--log-every-n-steps", "1", "--logger", "csv", "--logger", "tensorboard", "--logger", "csv",
         "--out", str(out)])
    config = PretrainConfig.load(out / "config.yaml")
    assert config.loggers == ["csv", "tensorboard"]  # recorded, each once
    (csv_dir,) = (out / "csv").iterdir()
    rows = (csv_dir / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert "loss_step" in header and "rankme" in header
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) - 1 == len(steps)  # the same records as metrics.jsonl (one per logging call)
    hparams = (csv_dir / "hparams.yaml").read_text()
    assert "method: simclr" in hparams and "image_size: 16" in hparams
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (tb_dir,) = (out / "tensorboard").iterdir()
    events = EventAccumulator(str(tb_dir)).Reload()
    assert len(events.Scalars("loss_step")) == 5  # one per step of the epoch


def test_a_missing_tracker_package_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"logger=wandb: the wandb package is not installed; "
                                          r"pip install 'selfsup\[wandb\]'"):
        check_loggers(["csv", "wandb"])
    with pytest.raises(ConfigError, match="logger=wandb"):  # before the data is read
        pretrain(PretrainConfig(loggers=["wandb"], out=str(tmp_path / "run"), **TINY))
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r"loggers=\['neptune'\]: expected names among csv, tensorboard"):
        validate(PretrainConfig(loggers=["neptune"], **TINY))


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow is not installed")
def test_mlflow_writes_a_local_file_store(tmp_path):
    out = tmp_path / "run"
    pretrain(PretrainConfig(loggers=["mlflow"], out=str(out), **TINY))
    assert any((out / "mlruns").rglob("loss_step"))


def test_help_and_methods_import_no_training_stack():
    """Neither ``selfsup --help`` nor ``selfsup methods`` imports torch, Lightning,
    scikit-learn or timm (the listing reads selfsup/catalogue.json)."""
    code = ("import sys, contextlib, io\n"
            "from selfsup.cli import run\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "    run(sys.argv[1:])\n"
            "print(sorted(m for m in ('lightning', 'sklearn', 'timm', 'torch') if m in sys.modules))")
    for args, expected in ((["--help"], "[]"), (["pretrain", "--help"], "[]"), (["methods"], "[]"), (["methods", "dino"], "[]")):
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().splitlines()[-1] == expected, (args, done.stdout)


def test_no_bars_or_stage_lines_off_a_terminal_and_none_with_quiet(tmp_path, capsys):
    """Off a terminal (here: pytest captures stderr) the output is the summary line only."""
    run(["pretrain", "--data", "digits", "--epochs", "1", "--image-size", "16", "--no-report", "--quiet",
         "--out", str(tmp_path / "run")])
    captured = capsys.readouterr()
    assert "Epoch" not in captured.err and "v_num" not in captured.err
    assert len(captured.out.strip().splitlines()) == 1 and "kNN top-1" in captured.out


def test_stage_lines_show_when_asked(tmp_path):
    """On a terminal the stages show by default; SELFSUP_LOG=info shows them anywhere."""
    done = subprocess.run([sys.executable, "-m", "selfsup.cli", "pretrain", "--data", "digits", "--epochs", "1",
                           "--image-size", "16", "--no-report", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env={**os.environ, "SELFSUP_LOG": "info"})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("selfsup: ")]
    assert [line.split(" ")[1] for line in lines] == ["evaluating", "training", "evaluating"], lines
    assert "training simclr on 1437 samples for 1 epochs" in lines[1]
    # Lightning's notices stay out of the command's output (importing lightning resets its level)
    assert "litlogger" not in done.stderr and "GPU available" not in done.stderr, done.stderr[-2000:]


def test_the_catalogue_is_the_registry():
    """``selfsup methods`` reads catalogue.json; regenerate it with ``python -m selfsup.catalogue``."""
    from selfsup import catalogue

    assert catalogue.load() == catalogue.from_registry(), "run: python -m selfsup.catalogue"
    card = catalogue.card("moco").splitlines()
    assert card[0].startswith("moco (2020): ") and any(line.split() == ["queue_size", "4096"] for line in card)
