"""Properties of the command line on generated inputs: whatever the options and the data,
the exit code is 0 or 2 (a one-line error), nothing prints a traceback, and a 0 leaves
complete, consistent outputs.

The budget is small by default (a CI run takes seconds); SELFSUP_PROPERTY_EXAMPLES=200 runs
longer searches."""

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings, strategies as st

from selfsup.cli import main

EXAMPLES = int(os.environ.get("SELFSUP_PROPERTY_EXAMPLES", "0"))
BUDGET = dict(deadline=None, derandomize=not EXAMPLES, suppress_health_check=[HealthCheck.too_slow])


def run_cli(argv: list[str]) -> tuple[int, str]:
    """(exit code, stdout + stderr) of ``selfsup ARGV`` in this process."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        try:
            main(argv)
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    return code, output.getvalue()


def assert_clean(code: int, output: str) -> None:
    assert code in (0, 2), output
    assert "Traceback" not in output, output
    if code == 2:
        errors = [line for line in output.splitlines() if line.startswith(("selfsup: error:", "usage:"))]
        assert errors, output


values = st.one_of(st.floats(-3, 3, width=32), st.sampled_from([float("nan"), float("inf"), 0.0]))


@st.composite
def embeddings(draw):
    rows, dimension = draw(st.integers(0, 12)), draw(st.integers(0, 4))
    finite = draw(st.booleans())
    element = st.floats(-3, 3, width=32) if finite else values
    return np.array(draw(st.lists(st.lists(element, min_size=dimension, max_size=dimension),
                                  min_size=rows, max_size=rows)), dtype=np.float32).reshape(rows, dimension)


task = st.one_of(
    st.tuples(st.just("neighbors"), st.lists(st.sampled_from(["--k"]), max_size=1), st.integers(-2, 15)),
    st.tuples(st.just("curate"), st.just(["--budget"]), st.integers(-2, 15)),
    st.tuples(st.just("cluster"), st.just(["--clusters"]), st.integers(-1, 14)),
    st.tuples(st.just("dedupe"), st.just(["--threshold"]), st.floats(-2, 2)),
)


@settings(max_examples=EXAMPLES or 25, **BUDGET)
@given(x=embeddings(), choice=task)
def test_tasks_on_generated_embeddings_files(x, choice):
    command, flags, value = choice
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "e.npy"
        np.save(path, x)
        out = Path(directory) / "out.txt"
        argv = [command, str(path), *(f for flag in flags for f in (flag, str(value)))]
        if command == "cluster":
            argv += ["--epochs", "2", "--views", "0"]
        if command in ("neighbors", "curate", "cluster"):
            argv += ["--out", str(out)]
        code, output = run_cli(argv)
        event(f"exit {code}")  # --hypothesis-show-statistics shows how many examples got how far
        assert_clean(code, output)
        usable = x.size > 0 and np.isfinite(x).all()
        if not usable:
            assert code == 2, output  # never a silent result on NaN, inf or empty embeddings
            return
        if code == 0 and command == "neighbors":
            k = value if flags else 10
            rows = out.read_text().splitlines()[1:]
            assert len(rows) == len(x) * k  # every query gets its k neighbours
        if code == 0 and command == "curate":
            selected = out.read_text().splitlines()
            assert len(selected) == len(set(selected)) == value


@st.composite
def tables(draw):
    rows, columns = draw(st.integers(1, 40)), draw(st.integers(1, 3))
    classes = draw(st.integers(0, 3))  # 0: no label column
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    header = [f"f{c}" for c in range(columns)] + (["label"] if classes else [])
    lines = [",".join(header)]
    for r in range(rows):
        cells = [f"{v:.3f}" for v in rng.normal(size=columns)] + ([f"c{r % classes}"] if classes else [])
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n", bool(classes)


@settings(max_examples=EXAMPLES or 6, **BUDGET)
@given(table=tables(), epochs=st.integers(0, 3), warmup=st.integers(0, 3), batch_size=st.integers(1, 48),
       holdout=st.sampled_from([0.0, 0.2, 0.5, 0.99]), seed=st.integers(-1, 3))
def test_pretrain_on_generated_tables(table, epochs, warmup, batch_size, holdout, seed):
    text, labelled = table
    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory) / "t.csv"
        data.write_text(text)
        out = Path(directory) / "run"
        argv = ["pretrain", "--data", str(data), "--out", str(out), "--epochs", str(epochs),
                "--warmup-epochs", str(warmup), "--batch-size", str(batch_size), "--holdout", str(holdout),
                "--seed", str(seed), "--no-report", "--monitor-samples", "8", "--quiet"]
        if labelled:
            argv += ["--label-column", "label"]
        code, output = run_cli(argv)
        event(f"exit {code}")  # --hypothesis-show-statistics shows how many examples got how far
        assert_clean(code, output)
        if code == 0:
            config = yaml.safe_load((out / "config.yaml").read_text())
            summary = json.loads((out / "summary.json").read_text())
            assert summary["epochs"] == config["epochs"] == epochs and summary["data"] == config["data"]
            assert summary["method"] == config["method"] and summary["backbone"] == config["backbone"]
            records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
            steps = [(r["step"], tuple(sorted(r))) for r in records]
            assert len(steps) == len(set(steps))  # every step once
            assert not (out / ".lock").exists() or (out / ".lock").read_text().strip().isdigit()


@pytest.mark.parametrize("argv", [
    ["pretrain", "--data", "digits", "--epochs", "2", "--warmup-epochs", "3"],
    ["pretrain", "--data", "digits", "--epochs", "1000000000"],
    ["pretrain", "--data", "digits", "--seed", "-1"],
])
def test_options_refused_before_any_work(argv, tmp_path):
    code, output = run_cli([*argv, "--quiet"] if argv[0] != "pretrain" else [*argv, "--out", str(tmp_path / "r")])
    assert code == 2 and "Traceback" not in output, output
    assert not (tmp_path / "r").exists()


def test_an_unexpected_error_is_one_line_and_a_log_file(tmp_path, monkeypatch):
    import selfsup.cli

    def broken(argv=None):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(selfsup.cli, "run", broken)
    monkeypatch.setenv("SELFSUP_CRASH_DIR", str(tmp_path))
    code, output = run_cli(["datasets"])
    assert code == 1 and "Traceback" not in output
    assert output.count("\n") == 1 and "unexpected error: ZeroDivisionError: a bug" in output
    log = next(tmp_path.glob("selfsup-crash-*.log"))
    assert str(log) in output and "Traceback" in log.read_text() and "ZeroDivisionError" in log.read_text()
