"""A run directory survives concurrency, signals and resumes: one process at a time (a lock),
a signal exits non-zero naming the last good checkpoint, a resume continues from the newest
complete checkpoint (re-planning the schedule when the epochs grow), and every step appears
once in metrics.jsonl whatever the point of the interruption."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from selfsup.config import ConfigError, PretrainConfig
from selfsup.methods.optim import warmup_cosine
from selfsup.runs import Run
from selfsup.tasks import pretrain
from selfsup.train.checkpoint import CheckpointError, load_checkpoint
from selfsup.train.lock import RunLock
from selfsup.train.module import PretrainModule

FAST = dict(data="digits", method="simclr", image_size=16, batch_size=256, report=False, monitor_samples=256,
            log_every_n_steps=1)  # 5 steps an epoch, every step logged


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-epoch run (10 steps), copied by each test that changes it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    pretrain(PretrainConfig(out=str(out), epochs=2, **FAST))
    return out


def copy_of(run, tmp_path):
    shutil.copytree(run, tmp_path / "run", symlinks=True)
    return tmp_path / "run"


def lines(out):
    """(step, names) of every line of metrics.jsonl: a step line and an epoch line may share a step."""
    return [(r["step"], tuple(sorted(r))) for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]


def resume(out, epochs=None, **options):
    return pretrain(PretrainConfig(out=str(out), resume=True, epochs=epochs, **{**FAST, **options}))


# --- one process per run directory ---------------------------------------------------------

HOLDER = textwrap.dedent("""
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0); os.write(fd, f"{os.getpid()}\\n".encode())
    print("locked", flush=True)
    time.sleep(600)  # killed by the test
""")


def test_a_second_process_on_the_same_out_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=rf"in use by another selfsup process \(PID {holder.pid}\)"):
            pretrain(PretrainConfig(out=str(out), epochs=1, **FAST))
        assert not (out / "config.yaml").exists() and not (out / "checkpoints").exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder is dead: its lock file stays, naming it, and is recognised as stale
    assert (out / ".lock").read_text().strip() == str(holder.pid)
    pretrain(PretrainConfig(out=str(out), epochs=1, **FAST))
    assert (out / "summary.json").exists()


def test_the_ranks_of_one_torchrun_job_share_the_lock_and_another_jobs_ranks_are_refused(tmp_path, monkeypatch):
    """Rank 0 acquires the lock; the other ranks join it: at once when their own job holds
    it, refused naming the holder when another job does (before, they went on to read the
    data and waited for a rank 0 that had been refused)."""
    out = tmp_path / "run"
    out.mkdir()
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-a")
    rank0 = RunLock(out).acquire()
    try:
        assert (out / ".lock").read_text().split() == [str(os.getpid()), "job-a"]
        RunLock(out).join(timeout=5)  # a rank of the same job
        monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-b")
        started = time.monotonic()
        holder = rf"in use by another selfsup process \(PID {os.getpid()}, torchrun job job-a\)"
        with pytest.raises(ConfigError, match=holder):  # a rank of another job
            RunLock(out).join(timeout=60)
        assert time.monotonic() - started < 10
        with pytest.raises(ConfigError, match=holder):  # that job's rank 0
            RunLock(out).acquire()
    finally:
        rank0.release()


def test_a_joining_rank_waits_for_its_rank_0_and_never_keeps_it_out(tmp_path, monkeypatch):
    """A rank that starts first waits (the lock file is a dead job's); its probes of the lock
    (a shared lock for an instant) do not make rank 0 refuse itself."""
    import threading

    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text("999999 dead-job\n")  # stale: nobody holds it
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-a")
    joined = []
    rank1 = threading.Thread(target=lambda: joined.append(RunLock(out).join(timeout=30)))
    rank1.start()
    time.sleep(0.3)
    assert rank1.is_alive()  # still waiting: the file names a job that is not running
    lock = RunLock(out)
    prober = RunLock(out)
    stop = threading.Event()
    hammer = threading.Thread(target=lambda: [prober._locked() for _ in iter(stop.is_set, True)])
    hammer.start()
    try:
        for _ in range(200):  # rank 0 acquires while another rank probes all the time (8 in 200 failed without retries)
            lock.acquire()
            lock.release()
        lock.acquire()
        rank1.join(timeout=10)
        assert joined == [None] and not rank1.is_alive()
    finally:
        stop.set()
        hammer.join()
        lock.release()


# --- signals -------------------------------------------------------------------------------

@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_exits_non_zero_naming_the_last_good_checkpoint(signum, code, tmp_path):
    """The command, in this process (``selfsup.cli.main``, as ``python -m selfsup.cli`` runs
    it), gets the signal from another thread once the first epoch's checkpoint exists. In a
    subprocess on digits each case took 30 s, most of it importing torch and Lightning."""
    import threading

    from tests.test_properties import run_cli

    table = tmp_path / "t.csv"
    table.write_text("a,b,c\n" + "".join(f"{i % 7},{i % 5 * 0.5},{i % 3}\n" for i in range(64)))
    out = tmp_path / "run"
    argv = ["pretrain", "--data", str(table), "--epochs", "100000", "--batch-size", "32", "--monitor-samples", "8",
            "--no-report", "--out", str(out)]
    done = threading.Event()

    def send():  # once the run has a good checkpoint, as a scheduler or Ctrl-C would at any time
        while not done.is_set() and not (out / "checkpoints" / "last").exists():
            time.sleep(0.02)
        if not done.is_set():
            os.kill(os.getpid(), signum)

    received = []
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, lambda *_: received.append("SIGTERM"))  # outside fit: not pytest's death
    signal.signal(signal.SIGINT, signal.default_int_handler)  # KeyboardInterrupt, as in a shell
    sender = threading.Thread(target=send)
    sender.start()
    try:
        exit_code, output = run_cli(argv)
    finally:
        done.set()
        sender.join()
        for s, handler in before.items():  # Lightning ignores SIGINT after a KeyboardInterrupt
            signal.signal(s, handler)
    assert exit_code == code, output
    assert "Traceback" not in output
    last = os.path.realpath(out / "checkpoints" / "last")
    message = [line for line in output.splitlines() if line.startswith("selfsup: ") and "checkpoint" in line]
    assert len(message) == 1, output
    assert f"stopped by {signum.name}" in message[0], message[0]
    assert f"last good checkpoint: {last}" in message[0] and "--resume" in message[0]
    assert not (out / "summary.json").exists()


# --- resuming ------------------------------------------------------------------------------

def test_resume_with_more_epochs_continues_the_cosine_to_the_new_end(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    summary = resume(out, epochs=4)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert summary["epochs"] == 4 and config["epochs"] == 4
    logged = {r["step"]: r["lr"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
              if "lr" in r}
    assert sorted(logged) == list(range(20))
    base = config["lr"] * config["batch_size"] / 256
    for step in range(10, 20):  # the schedule of a 4-epoch run from the first new step on
        assert logged[step] == pytest.approx(base * warmup_cosine(step, 5, 20), rel=1e-5), step
        assert logged[step] > 0


def test_resume_needs_only_the_run_directory(finished, tmp_path):
    """The command an interrupted run prints (``selfsup pretrain --out RUN --resume``); it
    failed with 'data=None: is required'."""
    from tests.test_properties import run_cli

    out = copy_of(finished, tmp_path)
    code, output = run_cli(["pretrain", "--out", str(out), "--resume", "--epochs", "3", "--quiet"])
    assert code == 0, output
    assert json.loads((out / "summary.json").read_text())["epochs"] == 3
    assert sorted(step for step, names in lines(out) if "lr" in names) == list(range(15))


@pytest.mark.parametrize("option, message", [
    (dict(lr=0.123), "lr=0.123: the run in .* has "),
    (dict(data="wine"), "data='wine': the run in .* has 'digits'"),
    (dict(method_options={"temperature": 0.2}), r"method_options=\{'temperature': 0.2\}: the run in"),
])
def test_options_that_differ_from_the_run_are_refused_on_resume(option, message, finished, tmp_path):
    """They were silently replaced by config.yaml's."""
    out = copy_of(finished, tmp_path)
    with pytest.raises(ConfigError, match=message):
        resume(out, epochs=3, **option)
    assert lines(out) == lines(finished)


def test_resume_with_fewer_epochs_than_trained_is_refused(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    with pytest.raises(ConfigError, match="epochs=1: the run has already trained 2 epochs"):
        resume(out, epochs=1)


def test_dangling_last_falls_back_to_the_newest_complete_checkpoint(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    before = lines(out)
    shutil.rmtree(out / "checkpoints" / "epoch-0002")  # last now dangles; epoch-0001 is complete
    with pytest.warns(UserWarning, match="epoch-0002.*resuming from .*epoch-0001"):
        resume(out, epochs=2)
    assert lines(out) == before  # steps 5-9 trained again, each logged once
    assert load_checkpoint(out / "checkpoints" / "last")["global_step"] == 10


class Killed(BaseException):
    """Stands for a hard kill: nothing after it runs (no summary)."""


@pytest.mark.parametrize("at_step", [3, 5, 6])  # before the first checkpoint, right after it, after a step of epoch 2
def test_after_an_interruption_and_resume_every_step_appears_once(at_step, finished, tmp_path, monkeypatch):
    out = tmp_path / "run"

    def dies(self, batch, batch_idx):
        if self.global_step == at_step:  # steps up to at_step - 1 are logged
            raise Killed

    monkeypatch.setattr(PretrainModule, "on_train_batch_start", dies, raising=False)
    with pytest.raises(Killed):
        pretrain(PretrainConfig(out=str(out), epochs=2, **FAST))
    monkeypatch.undo()
    assert max(step for step, _ in lines(out)) == at_step - 1
    if at_step < 5:
        with pytest.warns(UserWarning, match="no complete checkpoint"):
            resume(out)
    else:
        resume(out)
    assert lines(out) == lines(finished)


def test_a_torn_last_line_of_metrics_is_ignored_with_a_warning(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    (out / "checkpoints" / "last").unlink()
    os.symlink("epoch-0001", out / "checkpoints" / "last")
    shutil.rmtree(out / "checkpoints" / "epoch-0002")
    kept = (out / "metrics.jsonl").read_text().splitlines()[:9]  # steps 0-4, the epoch line, steps 5-7
    (out / "metrics.jsonl").write_text("".join(line + "\n" for line in kept) + '{"step": 8, "lo')  # power loss
    with pytest.warns(UserWarning, match="metrics.jsonl: ignoring a torn last line"):
        resume(out)
    assert lines(out) == lines(finished)


def test_a_state_json_with_wrong_types_is_one_line_naming_the_field(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    state = os.path.realpath(out / "checkpoints" / "last" / "state.json")
    structure = json.loads(open(state).read())
    entries = structure["state"]["__dict__"]
    for entry in entries:
        if entry[0] == "global_step":
            entry[1] = "ten"
    open(state, "w").write(json.dumps(structure))
    with pytest.raises(CheckpointError, match=r"state.json: global_step is 'ten', expected an integer"):
        resume(out, epochs=3)


def test_a_last_link_leaving_the_run_directory_is_refused(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copytree(out / "checkpoints" / "epoch-0002", elsewhere / "epoch-0002")
    (out / "checkpoints" / "last").unlink()
    os.symlink(elsewhere / "epoch-0002", out / "checkpoints" / "last")
    with pytest.raises(CheckpointError, match="leaves the run directory"):
        resume(out, epochs=3)
    with pytest.raises(CheckpointError, match="leaves the run directory"):
        Run(out).method()
