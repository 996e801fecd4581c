"""Accelerator checks before any work, and where a trained model runs afterwards."""

import os
import subprocess
import sys
import time
import warnings

import pytest
import torch

from selfsup import devices
from selfsup.config import ConfigError, PretrainConfig
from selfsup.devices import CPU, Placement, check_accelerator, placement
from selfsup.evaluate.protocols import embed_images
from selfsup.tasks import pretrain

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")


@no_gpu
@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_a_gpu_this_machine_lacks_is_refused(accelerator):
    with pytest.raises(ConfigError, match=f"accelerator={accelerator}: no CUDA GPU"):
        check_accelerator(accelerator)


@pytest.mark.parametrize("accelerator, count, message", [
    ("tpu", "1", "accelerator='tpu': expected one of"),
    ("cpu", "two", "devices='two': expected a count"),
    ("cpu", "0", "devices=0: expected at least 1"),
])
def test_bad_accelerator_or_devices_names_the_value(accelerator, count, message):
    with pytest.raises(ConfigError, match=message):
        check_accelerator(accelerator, count)


@no_gpu
@pytest.mark.parametrize("command", [
    ["pretrain", "--data", "digits", "--accelerator", "gpu"],
    ["pretrain", "--data", "digits", "--accelerator", "gpu", "--devices", "2"],
    ["embed", "no-such-run", "--out", "x.npy", "--accelerator", "gpu"],
])
def test_cli_refuses_a_missing_gpu_in_one_line_before_any_work(command, tmp_path):
    started = time.time()
    done = subprocess.run([sys.executable, "-m", "selfsup.cli", *command], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("selfsup: error: accelerator=gpu: no CUDA GPU"), done.stderr
    assert not (tmp_path / "runs").exists()  # nothing was written
    assert time.time() - started < 60  # no data loaded, no Lightning start-up (13 s before)


def test_several_devices_from_python_are_refused_with_the_torchrun_command(tmp_path):
    with pytest.raises(ConfigError, match=r"devices=2: one process per device; launch them with "
                                          r"`torchrun --standalone --nproc_per_node=2"):
        pretrain(PretrainConfig(data="digits", devices="2", out=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()


@no_gpu
def test_a_run_trained_on_a_gpu_is_used_on_the_cpu_here():
    where = placement(trained_on="gpu", trained_precision="bf16-mixed")
    assert where.device == torch.device("cpu")
    assert where.dtype == (torch.bfloat16 if devices.native_bf16("cpu") else None)  # auto's choice here
    with pytest.raises(ConfigError, match="no CUDA GPU"):  # asked for explicitly: refused
        placement("gpu", trained_on="gpu")


@pytest.mark.parametrize("native", [True, False])
def test_placement_keeps_the_runs_precision_on_the_same_kind_of_device(native, monkeypatch):
    monkeypatch.setattr(devices, "native_bf16", lambda accelerator="cpu": native)
    assert placement(trained_precision="32-true").dtype is None
    # bf16 where the CPU computes it in hardware; emulated bf16 was 3x slower (B3)
    assert placement(trained_precision="bf16-mixed").dtype == (torch.bfloat16 if native else None)
    assert placement(trained_precision="16-mixed").dtype is None  # no fp16 autocast on CPUs


class Recorder(torch.nn.Module):
    """A linear map that records the dtype of what it computed in."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(12, 4)
        self.seen = []

    def forward(self, x):
        out = self.linear(x.flatten(1))
        self.seen.append(out.dtype)
        return out


def test_embedding_runs_in_batches_under_the_placements_autocast():
    torch.manual_seed(0)
    samples = torch.randint(0, 256, (10, 3, 2, 2), dtype=torch.uint8)
    model = Recorder()
    exact = embed_images(model, samples, [0.5] * 3, [0.25] * 3, batch_size=4, placement=CPU)
    assert model.seen == [torch.float32] * 3  # 10 samples in batches of 4
    model.seen.clear()
    bf16 = embed_images(model, samples, [0.5] * 3, [0.25] * 3, batch_size=4,
                        placement=Placement(torch.device("cpu"), torch.bfloat16))
    assert model.seen == [torch.bfloat16] * 3 and bf16.dtype == torch.float32
    assert torch.allclose(bf16, exact, rtol=2e-2, atol=2e-2) and not torch.equal(bf16, exact)


def _every_command_with(*flags):
    """Each command that takes --accelerator/--devices, on a run directory that does not
    exist: a refusal naming the devices shows the check came before anything was read."""
    missing = "no-such-run"
    return [["pretrain", "--data", "digits", *flags], ["evaluate", missing, *flags], ["report", missing, *flags],
            ["embed", missing, "--out", "e.npy", *flags], ["neighbors", missing, *flags],
            ["dedupe", missing, *flags], ["cluster", missing, *flags], ["curate", missing, "--budget", "5", *flags],
            ["finetune", missing, "--labels", "2", *flags], ["adapt", missing, "--data", "digits", *flags]]


def _refused_in_one_line(argv, tmp_path, monkeypatch, message):
    from tests.test_properties import run_cli

    monkeypatch.chdir(tmp_path)
    code, output = run_cli([*argv, "--quiet"])
    lines = output.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"selfsup: error: {message}"), output
    assert list(tmp_path.iterdir()) == []  # nothing written (pretrain's runs/ included)


@no_gpu
@pytest.mark.parametrize("accelerator", ["cuda", "gpu"])
@pytest.mark.parametrize("argv", _every_command_with(), ids=lambda argv: argv[0])
def test_every_command_refuses_a_gpu_this_machine_lacks(argv, accelerator, tmp_path, monkeypatch):
    _refused_in_one_line([*argv, "--accelerator", accelerator], tmp_path, monkeypatch,
                         f"accelerator={accelerator}: no CUDA GPU")


@pytest.mark.parametrize("argv", _every_command_with("--devices", "64"), ids=lambda argv: argv[0])
def test_every_command_refuses_more_devices_than_this_machine_has(argv, tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "cpu_cores", lambda: 4)  # whatever this machine has, 64 is more
    monkeypatch.setattr(devices, "cuda_count", lambda: 0)
    _refused_in_one_line(argv, tmp_path, monkeypatch, "devices=64: on the CPU a device is a process, and this "
                                                      "machine has 4 CPU core(s)")


@pytest.mark.parametrize("argv", _every_command_with("--accelerator", "cpu", "--devices", "2")[1:],
                         ids=lambda argv: argv[0])
def test_a_model_on_the_cpu_is_one_device(argv, tmp_path, monkeypatch):
    """After training, --devices splits inference batches over GPUs: on the CPU 2 devices
    meant nothing (it ran as one, silently)."""
    monkeypatch.setattr(devices, "cpu_cores", lambda: 4)
    _refused_in_one_line(argv, tmp_path, monkeypatch, "devices=2: a model runs on the CPU as one device")


def test_cpu_cores_is_what_this_process_may_use():
    assert 1 <= devices.cpu_cores() <= (os.cpu_count() or 1)


@pytest.mark.parametrize("backbone, size, hazard", [("timm/resnet18", 16, "net.layer4.0.conv1 (1x1 input)"),
                                                     ("timm/resnet18", 32, None),
                                                     ("resnet18", 16, None)])  # the small stem keeps 2x2 maps
def test_cpu_bf16_hazard_names_the_strided_conv_on_a_one_pixel_map(backbone, size, hazard):
    from selfsup.backbones import create

    model = create(backbone, image_size=size).train()
    list(model.modules())[3].eval()  # a module in eval mode stays so
    modes = {name: m.training for name, m in model.named_modules()}
    assert devices.cpu_bf16_hazard(model, [3, size, size]) == hazard
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert devices.cpu_bf16_hazard(model, [16]) is None  # a table's sample: no images, no probe


@pytest.mark.parametrize("precision", ["auto", "bf16-mixed", "32-true"])
def test_cpu_bf16_where_its_gradients_are_wrong_falls_back_or_is_refused(precision, monkeypatch, tmp_path):
    """timm's resnet18 at 16 px: auto trains in fp32 (said in one warning) where it would pick
    bf16; an explicit bf16 is refused before training; fp32 goes on as asked."""
    from selfsup.train import prepare

    monkeypatch.setattr(devices, "native_bf16", lambda accelerator="cpu": True)  # as on a CPU with bf16 units
    config = PretrainConfig(data="digits", backbone="timm/resnet18", image_size=16, holdout=0.9, epochs=1,
                            precision=precision, out=str(tmp_path / "run"), report=False)
    if precision == "bf16-mixed":
        with pytest.raises(ConfigError, match=r"precision=bf16-mixed: backbone timm/resnet18 at image_size 16 .*"
                                              r"net\.layer4\.0\.conv1 \(1x1 input\).*use --precision 32-true"):
            prepare(config)
        assert not (tmp_path / "run").exists()
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared = prepare(config)
    prepared.release()
    said = [str(w.message) for w in caught if "precision auto" in str(w.message)]
    assert prepared.config.precision == "32-true"
    assert PretrainConfig.load(tmp_path / "run" / "config.yaml").precision == "32-true"
    assert len(said) == (precision == "auto") and all("net.layer4.0.conv1" in s for s in said)
