"""2 processes (gloo, CPU) compute what 1 process computes on the concatenated batch."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from torch import nn

from selfsup.evaluate.run import evaluate_run
from selfsup.losses import nt_xent
from selfsup.train.sync_batchnorm import convert_batchnorm
from tests.gloo import run_in_processes
from tests.train.test_run_directory import HOLDER


def _nt_xent_part(rank, world_size, z1, z2):
    n = len(z1) // world_size
    mine1 = z1[rank * n:(rank + 1) * n].clone().requires_grad_(True)
    mine2 = z2[rank * n:(rank + 1) * n].clone().requires_grad_(True)
    loss = nt_xent(mine1, mine2, 0.5, gather_distributed=True)
    (loss / world_size).backward()  # the global loss is the mean over ranks
    return loss.item(), mine1.grad, mine2.grad


def test_gathered_nt_xent_equals_single_process():
    torch.manual_seed(0)
    z1, z2 = torch.randn(8, 5), torch.randn(8, 5)
    results = run_in_processes(_nt_xent_part, z1, z2)
    a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    loss = nt_xent(a, b, 0.5)
    loss.backward()
    assert abs(sum(r[0] for r in results) / 2 - loss.item()) < 1e-6
    assert torch.allclose(torch.cat([r[1] for r in results]), a.grad, atol=1e-6)
    assert torch.allclose(torch.cat([r[2] for r in results]), b.grad, atol=1e-6)


def _batchnorm_part(rank, world_size, x, state, affine):
    bn = convert_batchnorm(nn.Sequential(nn.BatchNorm2d(3, affine=affine)))
    bn.load_state_dict(state)
    n = len(x) // world_size
    mine = x[rank * n:(rank + 1) * n].clone().requires_grad_(True)
    out = bn(mine)
    (out.square().sum() / len(x)).backward()
    return out.detach(), mine.grad, bn[0].running_var.clone(), bn[0].weight.grad if affine else None


@pytest.mark.parametrize("affine", [True, False])
def test_global_batchnorm_equals_batchnorm_on_the_whole_batch(affine):
    torch.manual_seed(0)
    x = torch.randn(8, 3, 4, 4) * 3 + 1
    reference = nn.Sequential(nn.BatchNorm2d(3, affine=affine))
    if affine:
        with torch.no_grad():
            reference[0].weight.uniform_(0.5, 1.5)
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    results = run_in_processes(_batchnorm_part, x, state, affine)
    xr = x.clone().requires_grad_(True)
    out = reference(xr)
    (out.square().sum() / len(x)).backward()
    assert torch.allclose(torch.cat([r[0] for r in results]), out, atol=1e-5)
    assert torch.allclose(torch.cat([r[1] for r in results]), xr.grad, atol=1e-5)
    assert torch.allclose(results[0][2], reference[0].running_var, atol=1e-5)
    if affine:  # each rank holds its part of the weight gradient; DDP sums (averages) them
        assert torch.allclose(results[0][3] + results[1][3], reference[0].weight.grad, atol=1e-5)


def _bf16_batchnorm_part(rank, world_size, x, momentum):
    bn = convert_batchnorm(nn.Sequential(nn.BatchNorm2d(3, momentum=momentum)))
    n = len(x) // world_size
    for _ in range(2):  # two steps: with momentum None the buffers are the running average
        out = bn(x[rank * n:(rank + 1) * n])
    return out.detach(), bn[0].running_mean.clone(), bn[0].running_var.clone()


@pytest.mark.parametrize("momentum", [0.1, None])
def test_global_batchnorm_keeps_float32_statistics_for_bf16_input(momentum):
    """Under bf16 autocast a convolution hands BatchNorm bf16 activations; the statistics
    and running buffers stay float32 (as torch's BatchNorm keeps them), the output is bf16."""
    torch.manual_seed(0)
    x = (torch.randn(8, 3, 4, 4) * 3 + 100).bfloat16()  # a large mean: E[x^2] - E[x]^2 would cancel
    results = run_in_processes(_bf16_batchnorm_part, x, momentum)
    reference = nn.BatchNorm2d(3, momentum=momentum)
    for _ in range(2):
        expected = reference(x.float())
    out, running_mean, running_var = results[0]
    assert out.dtype == torch.bfloat16 and running_mean.dtype == running_var.dtype == torch.float32
    assert torch.allclose(running_mean, reference.running_mean, atol=1e-5)
    assert torch.allclose(running_var, reference.running_var, rtol=1e-4)
    assert torch.allclose(torch.cat([r[0] for r in results]).float(), expected, atol=2e-2)  # bf16 output


def test_cuda_runs_use_torch_sync_batchnorm():
    net = convert_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), "cuda")
    assert isinstance(net[1], nn.SyncBatchNorm)
    assert set(net.state_dict()) == {"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                                     "1.running_var", "1.num_batches_tracked"}  # checkpoints keep their keys


def _losses(path):
    return [r["loss_step"] for r in map(json.loads, path.read_text().splitlines()) if "loss_step" in r]


def _monitors(path):
    (epoch,) = [r for r in map(json.loads, path.read_text().splitlines()) if "rankme" in r]
    return epoch


TINY = ["pretrain", "--data", "digits", "--epochs", "1", "--image-size", "16", "--log-every-n-steps", "1",
        "--no-report"]
EXACT = ["--no-channels-last", "--precision", "32-true"]  # exact kernels, fp32 on any CPU


def _selfsup(*args, out, launcher=(), env=None):
    done = subprocess.run([sys.executable, *launcher, "-m", "selfsup.cli", *args, "--out", str(out)],
                          capture_output=True, text=True, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr[-2000:]
    return _losses(out / "metrics.jsonl")


def _one_process(*args, out):
    # one thread, as torchrun gives each of its processes: with two, the single process sums
    # in another order and drifts by 1.3e-5 at step 4 (BYOL), 7.6e-6 with one (measured)
    return _selfsup(*args, out=out, env={"OMP_NUM_THREADS": "1"})


def _torchrun(*args, out, processes=2):
    return _selfsup(*args, out=out, launcher=("-m", "torch.distributed.run", "--standalone",
                                              f"--nproc_per_node={processes}"))


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_torchrun_two_processes_match_one_process(method, tmp_path):
    # one epoch, 5 steps: float summation order drifts the runs apart by ~1e-5 after that
    options = [*TINY, "--method", method, *EXACT]
    losses_two = _torchrun(*options, out=tmp_path / "two")
    losses_one = _one_process(*options, out=tmp_path / "one")
    assert len(losses_one) == len(losses_two) == 5
    # float summation order (all-reduced BatchNorm statistics, gathered batches) drifts the
    # runs apart chaotically: BYOL's differences were 0-7.6e-6 over the 5 steps, and 3.1e-5
    # at one step after views changed by 1e-6 (measured); a wrong gradient or view is ~1e-2
    for step, (a, b) in enumerate(zip(losses_one, losses_two)):
        assert abs(a - b) < 5e-5, f"step {step}: 1 process {a}, 2 processes {b}"
    # the monitors read the steps' own embeddings, each process its slices, gathered
    monitors = [_monitors(tmp_path / run / "metrics.jsonl") for run in ("one", "two")]
    for name in ("rankme", "uniformity", "embedding_std", "alignment"):
        assert monitors[0][name] == pytest.approx(monitors[1][name], rel=1e-3), name
    # the checkpoint written by 2 processes loads and evaluates in 1
    result = evaluate_run(tmp_path / "two")
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert abs(result["knn_top1"] - summary["knn_top1"]) < 1e-6


def _assert_close_in_bf16(losses_one, losses_two):
    """bf16 rounds activations to 8 significant bits, and the two runs round different
    numbers (convolution kernels chosen per batch size, statistics summed in another order),
    so their losses agree only to ~1e-4. Measured over the 5 steps of 1 vs 2 processes in
    bf16: mean |difference| 7.5e-5 (SimCLR) and 1.7e-4 (BYOL), largest 6.2e-4 (BYOL, step 4).
    The bug this guards against, BatchNorm with each process's own statistics, measured mean
    1.9e-3 (SimCLR) and 2.8e-3 (BYOL), largest 4.4e-3 and 6.7e-3."""
    assert len(losses_one) == len(losses_two) == 5
    differences = [abs(a - b) for a, b in zip(losses_one, losses_two)]
    assert sum(differences) / len(differences) < 5e-4, (losses_one, losses_two)
    assert max(differences) < 2e-3, (losses_one, losses_two)


def test_torchrun_stream_mode_matches_one_process(tmp_path):
    """Each rank's workers crop its slice of every batch from the full images, as one process does."""
    from tests.data.test_stream import make_folder

    root = make_folder(tmp_path / "data", per_class=40, corrupt=False)
    options = ["pretrain", "--data", str(root), "--data-mode", "stream", "--workers", "1", "--epochs", "1",
               "--image-size", "16", "--batch-size", "16", "--log-every-n-steps", "1", "--no-report",
               "--method", "simclr", *EXACT]
    losses_two = _torchrun(*options, out=tmp_path / "two")
    losses_one = _one_process(*options, out=tmp_path / "one")
    assert len(losses_one) == len(losses_two) == 4  # 64 training images (80 less the 20% holdout), 16 a step
    for step, (a, b) in enumerate(zip(losses_one, losses_two)):
        assert abs(a - b) < 5e-5, f"step {step}: 1 process {a}, 2 processes {b}"


def test_torchrun_with_default_options_matches_one_process(tmp_path):
    """The README's command as written (precision auto: bf16 on a CPU with bf16 units,
    channels_last), only shorter."""
    options = [*TINY, "--method", "simclr"]
    losses_two = _torchrun(*options, out=tmp_path / "two")
    losses_one = _one_process(*options, out=tmp_path / "one")
    config = (tmp_path / "two" / "config.yaml").read_text()
    assert "precision: auto" not in config and "channels_last: true" in config
    if "precision: bf16-mixed" in config:
        _assert_close_in_bf16(losses_one, losses_two)
    else:  # fp32 where the CPU has no bf16 units; channels_last kernels differ by batch size
        assert max(abs(a - b) for a, b in zip(losses_one, losses_two)) < 1e-4


def test_devices_option_starts_the_processes_and_matches_one_process_in_bf16(tmp_path):
    """``selfsup pretrain --devices 2`` launches 2 processes itself (as torchrun would)."""
    options = [*TINY, "--method", "byol", "--precision", "bf16-mixed"]
    done = subprocess.run([sys.executable, "-m", "selfsup.cli", *options, "--devices", "2",
                           "--out", str(tmp_path / "two")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "starting 2 processes" in done.stderr
    # both ranks trained in the directory rank 0 locked: the lock names rank 0 and the job
    pid, job = (tmp_path / "two" / ".lock").read_text().split()
    assert int(pid) != os.getpid() and job
    losses_one = _one_process(*options, out=tmp_path / "one")
    _assert_close_in_bf16(losses_one, _losses(tmp_path / "two" / "metrics.jsonl"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_match_one_process(tmp_path):
    """Two torchrun launches of one process each, joined by a c10d rendezvous on 127.0.0.1,
    as two machines would be: world size 2 over 2 nodes."""
    options = [*TINY, "--method", "simclr", *EXACT]
    rendezvous = ["--nnodes=2", "--nproc_per_node=1", "--rdzv-backend=c10d",
                  f"--rdzv-endpoint=127.0.0.1:{_free_port()}", "--rdzv-id=selfsup-test"]
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *rendezvous, "-m", "selfsup.cli",
                               *options, "--out", str(tmp_path / "nodes")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for node in nodes:
        _, stderr = node.communicate(timeout=600)
        assert node.returncode == 0, stderr[-2000:]
    losses_one = _one_process(*options, out=tmp_path / "one")
    losses_nodes = _losses(tmp_path / "nodes" / "metrics.jsonl")
    assert len(losses_nodes) == 5
    for step, (a, b) in enumerate(zip(losses_one, losses_nodes)):
        assert abs(a - b) < 5e-5, f"step {step}: 1 process {a}, 2 nodes {b}"


def test_a_second_torchrun_job_on_a_locked_run_directory_is_refused(tmp_path):
    """While another process holds the run directory's lock, a 2-process job stops before
    reading its data with one line naming that process, exit 2 (the ranks of one job sharing
    the lock: ``test_devices_option_starts_the_processes...`` above)."""
    busy = tmp_path / "busy"
    busy.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(busy / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        done = subprocess.run([sys.executable, "-m", "selfsup.cli", "pretrain", "--data", "digits", "--epochs", "1",
                               "--devices", "2", "--quiet", "--out", str(busy)], capture_output=True, text=True,
                              timeout=300)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2, done.stderr[-2000:]
    refusals = [line for line in done.stderr.splitlines() if line.startswith("selfsup: error:")]
    assert len(refusals) == 1 and f"in use by another selfsup process (PID {holder.pid})" in refusals[0], done.stderr
    assert "Traceback" not in done.stderr and not (busy / "config.yaml").exists()
