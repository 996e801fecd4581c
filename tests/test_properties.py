"""Properties of the command line on generated inputs: whatever the options and the data,
the exit code is 0 or 2 (a one-line error), nothing prints a traceback, and a 0 leaves
complete, consistent outputs.

The budget is small by default (a CI run takes seconds); SELFSUP_PROPERTY_EXAMPLES=200 runs
longer searches."""

import contextlib
import io
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings, strategies as st

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


def outcome(code: int, output: str) -> str:
    """What an example came to, for ``--hypothesis-show-statistics``: the exit code and,
    for a refusal, the start of its message (paths left out)."""
    refusal = next((line for line in output.splitlines() if line.startswith("selfsup: error:")), "")
    return f"exit {code}" + (" " + re.sub(r"\S*/\S*", "PATH", refusal[16:])[:60] if refusal else "")


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
        event(outcome(code, output))  # --hypothesis-show-statistics shows how many examples got how far
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


# pretrain's options, each allowed more often than not (so that a fair share of examples
# trains to the end), with values refused alone (epochs 0, batch size 1, seed -1) or
# against the others and the data (a warm-up longer than the epochs, a holdout of 0.99)
options = st.fixed_dictionaries({
    "epochs": st.sampled_from([1, 2, 1, 2, 1, 2, 3, 0]), "warmup_epochs": st.sampled_from([0, 1, 0, 0, 0, 1, 0, 3]),
    "batch_size": st.sampled_from([8, 32, 2, 48, 16, 4, 64, 1]),
    "holdout": st.sampled_from([0.2, 0.0, 0.5, 0.2, 0.3, 0.1, 0.0, 0.99]), "seed": st.sampled_from([0, 3, 1, 2, 7, -1])})


def pretrain_argv(data: Path, out: Path, chosen: dict, *extra: str) -> list[str]:
    argv = ["pretrain", "--data", str(data), "--out", str(out), "--no-report", "--monitor-samples", "8", "--quiet",
            *extra]
    for name, value in chosen.items():
        argv += ["--" + name.replace("_", "-"), str(value)]
    return argv


def assert_complete(out: Path, epochs: int) -> dict:
    """A finished run directory: summary.json matches config.yaml, every step logged once,
    no lock left held; returns the config."""
    config = yaml.safe_load((out / "config.yaml").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == config["epochs"] == epochs and summary["data"] == config["data"]
    assert summary["method"] == config["method"] and summary["backbone"] == config["backbone"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [(r["step"], tuple(sorted(r))) for r in records]
    assert len(steps) == len(set(steps))  # every step once
    assert (out / "checkpoints" / "last").is_dir()
    assert not (out / ".lock").exists() or (out / ".lock").read_text().strip().isdigit()
    return config


@settings(max_examples=EXAMPLES or 6, **BUDGET)
@given(table=tables(), chosen=options)
def test_pretrain_on_generated_tables(table, chosen):
    text, labelled = table
    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory) / "t.csv"
        data.write_text(text)
        out = Path(directory) / "run"
        code, output = run_cli(pretrain_argv(data, out, chosen, *(["--label-column", "label"] if labelled else [])))
        event(outcome(code, output))  # --hypothesis-show-statistics shows how many examples got how far
        assert_clean(code, output)
        if code == 0:
            assert_complete(out, chosen["epochs"])


@st.composite
def series(draw):
    """(file format, (N, C, T) float32 values with NaN for missing and trailing steps,
    labels or None): unequal lengths, gaps, empty series, tiny and huge scales."""
    rows, channels, length = draw(st.integers(1, 24)), draw(st.integers(1, 3)), draw(st.integers(1, 16))
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    values = rng.normal(size=(rows, channels, length)) * draw(st.sampled_from([1e-6, 1.0, 1e6]))
    if draw(st.booleans()):  # shorter series: trailing NaN
        for r in range(rows):
            values[r, :, rng.integers(1, length + 1):] = np.nan
    if draw(st.booleans()):  # gaps, and now and then a series with no value at all
        values[rng.random(values.shape) < draw(st.sampled_from([0.1, 0.5]))] = np.nan
    if draw(st.booleans()):  # every value the same
        values[np.isfinite(values)] = 1.0
    classes = draw(st.integers(0, 3))
    labels = np.array([f"c{r % classes}" for r in range(rows)]) if classes else None
    return draw(st.sampled_from(["npy", "npz", "ts"])), values.astype(np.float32), labels


def write_series(directory: Path, fmt: str, values: np.ndarray, labels) -> Path:
    path = directory / f"s.{fmt}"
    if fmt == "npy":
        np.save(path, values[:, 0] if values.shape[1] == 1 else values)
    elif fmt == "npz":
        np.savez(path, series=values, **({} if labels is None else {"labels": labels}))
    else:
        classes = [] if labels is None else sorted(set(labels))
        lines = ["@problemName generated", "@timeStamps false", f"@univariate {str(values.shape[1] == 1).lower()}",
                 f"@classLabel {'true ' + ' '.join(classes) if classes else 'false'}", "@data"]
        for r, series in enumerate(values):
            cells = ":".join(",".join("?" if np.isnan(v) else repr(float(v)) for v in channel) for channel in series)
            lines.append(cells + ("" if labels is None else f":{labels[r]}"))
        path.write_text("\n".join(lines) + "\n")
    return path


VALID = {"epochs": 1, "warmup_epochs": 0, "batch_size": 8, "holdout": 0.2, "seed": 0}
WAVES = np.sin(np.linspace(0, 6, 12))[None, None] * np.arange(1, 13)[:, None, None].astype(np.float32)


@settings(max_examples=EXAMPLES or 12, **BUDGET)
@given(generated=series(), chosen=options)
@example(generated=("ts", np.concatenate([WAVES, WAVES[:, :, ::-1]], axis=1), np.array(["a", "b"] * 6)),
         chosen=VALID)  # always one 2-channel .ts file with labels, trained to the end
def test_pretrain_on_generated_series(generated, chosen):
    fmt, values, labels = generated
    with tempfile.TemporaryDirectory() as directory:
        data = write_series(Path(directory), fmt, values, labels)
        out = Path(directory) / "run"
        code, output = run_cli(pretrain_argv(data, out, chosen))
        event(f"{fmt}: {outcome(code, output)}")
        assert_clean(code, output)
        if code == 0:
            config = assert_complete(out, chosen["epochs"])
            assert config["modality"] == "timeseries" and config["input_shape"][0] == values.shape[1]


FORMATS = {"png": ["L", "RGB", "RGBA", "I;16", "P"], "jpg": ["L", "RGB"], "bmp": ["L", "RGB"],
           "tiff": ["L", "RGB", "RGBA", "I;16"], "webp": ["RGB", "RGBA"]}


@st.composite
def image_folders(draw):
    """[(relative path, width, height, mode, seed)] of images (sub-folders are classes when
    there are any), and how many unreadable files lie beside them."""
    classes = draw(st.integers(0, 3))
    images = []
    for i in range(draw(st.integers(1, 10))):
        fmt = draw(st.sampled_from(sorted(FORMATS)))
        folder = f"class{i % classes}/" if classes else ""
        images.append((f"{folder}{i}.{fmt}", draw(st.integers(1, 40)), draw(st.integers(1, 40)),
                       draw(st.sampled_from(FORMATS[fmt])), i))
    return images, draw(st.integers(0, 2))


def write_images(root: Path, images, corrupt: int) -> None:
    from PIL import Image

    for name, width, height, mode, seed in images:
        pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
        image = Image.fromarray(pixels, "RGBA")
        image = image.convert("L").convert("I;16") if mode == "I;16" else image.convert(mode)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / name)
    for j in range(corrupt):
        (root / f"broken{j}.png").write_bytes(b"\x89PNG not really")


@settings(max_examples=EXAMPLES or 8, **BUDGET)
@given(generated=image_folders(), image_size=st.integers(8, 24), chosen=options)
@example(generated=([(f"class{i % 2}/{i}.{fmt}", 9 + i, 30 - i, mode, i) for i, (fmt, mode) in
                     enumerate([("png", "I;16"), ("jpg", "L"), ("tiff", "RGBA"), ("webp", "RGB"), ("bmp", "RGB"),
                                ("png", "P"), ("png", "RGB"), ("jpg", "RGB")])], 1),
         image_size=12, chosen=VALID)  # always one mixed folder with classes and a bad file, trained to the end
def test_image_folders_are_read_whole_and_pretrain_cleanly(generated, image_size, chosen):
    """The public ``open_source`` reads every image and names every unreadable file, or
    refuses the folder in one line; ``pretrain`` on it exits 0 or 2 with complete outputs."""
    from selfsup.errors import ONE_LINE
    from selfsup.modalities import open_source

    images, corrupt = generated
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory) / "images"
        write_images(root, images, corrupt)
        try:
            source = open_source(str(root), image_size)
        except ONE_LINE as error:
            event(f"open_source refused: {type(error).__name__}")
        else:
            assert len(source.samples) == len(set(source.ids)) == len(images)
            assert len(source.skipped) == corrupt and all("broken" in str(f) for f, _ in source.skipped)
            assert tuple(source.samples.shape[-2:]) == (image_size, image_size)
        out = Path(directory) / "run"
        code, output = run_cli(pretrain_argv(root, out, chosen, "--image-size", str(image_size)))
        event(outcome(code, output))
        assert_clean(code, output)
        if code == 0:
            assert assert_complete(out, chosen["epochs"])["image_size"] == image_size


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
