"""Bad inputs found by throwing them at every command (issue 20's audit): each ended as an
"unexpected error" (exit 1, a traceback in a crash log) or as a silent result, and is now
the library's own one-line error (exit 2) before any work."""

import numpy as np
import pytest

from selfsup.runs import Run
from tests.test_properties import assert_clean, run_cli

ROWS = 40


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A labelled table, a 1-epoch run on it, a classifier from that run, and files that
    are wrong in one way each."""
    root = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    (root / "t.csv").write_text("a,b,c,label\n" + "".join(f"{x:.3f},{y:.3f},{z:.3f},{'pq'[i % 2]}\n"
                                                           for i, (x, y, z) in enumerate(rng.normal(size=(ROWS, 3)))))
    (root / "header.csv").write_text("a,b,label\n")
    (root / "narrow.csv").write_text("a,b,label\n" + "".join(f"{i * 0.5},{i % 3},{'pq'[i % 2]}\n" for i in range(20)))
    np.save(root / "e.npy", rng.normal(size=(30, 4)).astype(np.float32))
    np.save(root / "two.npy", rng.normal(size=(2, 4)).astype(np.float32))
    np.save(root / "huge.npy", np.full((5, 4), 3e38, np.float32))  # finite, but its length overflows
    np.save(root / "complex.npy", np.ones((5, 3), np.complex64))
    (root / "folder").mkdir()
    (root / "folder.npy").mkdir()
    (root / "file").write_text("x")
    run = root / "run"
    code, output = run_cli(["pretrain", "--data", str(root / "t.csv"), "--label-column", "label", "--epochs", "1",
                            "--out", str(run), "--no-report", "--monitor-samples", "8", "--quiet"])
    assert code == 0, output
    code, output = run_cli(["finetune", str(run), "--labels", "2", "--steps", "2", "--out", str(root / "clf"),
                            "--quiet"])
    assert code == 0, output
    train = Run(run).data()[1]
    (root / "twice.csv").write_text(f"{train.ids[0]},p\n{train.ids[1]},q\n{train.ids[0]},q\n")
    return root


def refused(argv: list[str], message: str) -> str:
    code, output = run_cli([*argv, "--quiet"])
    assert_clean(code, output)
    assert code == 2 and message in output, output
    return output


CASES = [
    # where an output goes: a folder for a file, a file for a folder
    (["neighbors", "{e.npy}", "--out", "{folder}"], "out='{folder}': is a folder; expected a file name"),
    (["neighbors", "{e.npy}", "--index", "{folder}"], "index='{folder}': is a folder"),
    (["curate", "{e.npy}", "--budget", "3", "--out", "{folder}"], "is a folder"),
    (["cluster", "{e.npy}", "--clusters", "2", "--views", "0", "--out", "{folder}"], "is a folder"),
    (["dedupe", "{e.npy}", "--out", "{file}"], "out='{file}': is a file; expected a folder"),
    (["embed", "{run}", "--out", "{folder.npy}"], "is a folder"),
    (["export", "{run}", "--format", "safetensors", "--out", "{file}"], "is a file"),
    (["finetune", "{run}", "--labels", "2", "--steps", "2", "--out", "{file}"], "is a file"),
    (["adapt", "{clf}", "--data", "{t.csv}", "--out", "{folder}"], "is a folder"),
    (["pack", "{folder}", "--out", "{file}"], "is a file"),
    (["benchmark", "--methods", "simclr", "--data", "{t.csv}", "--epochs", "1", "--out", "{file}"], "is a file"),
    # embeddings that are not points to search, cluster or normalise
    (["curate", "{huge.npy}", "--budget", "2"], "5 of 5 embeddings are too large to normalise"),
    (["neighbors", "{huge.npy}", "--k", "1"], "too large to normalise"),
    (["neighbors", "{complex.npy}", "--k", "1"], "embeddings must be real numbers, got dtype complex64"),
    # counts and numbers against what they count
    (["neighbors", "{e.npy}", "--query", ","], "query=',': names no sample"),
    (["dedupe", "{e.npy}", "--clusters", "0"], "clusters=0: expected an integer from 1 to 30"),
    (["dedupe", "{e.npy}", "--clusters", "31"], "clusters=31: expected an integer from 1 to 30"),
    (["evaluate", "{run}", "--knn-k", "0", "--quick"], "knn_k=0: expected an integer >= 1"),
    (["evaluate", "{run}", "--data", "{narrow.csv}", "--quick"], "samples of shape [2], the model was trained on [3]"),
    (["finetune", "{run}", "--labels", "abc"], "labels='abc': expected a count of labelled samples per class"),
    (["finetune", "{run}", "--labels", "{folder}"], "(this is a folder)"),
    (["finetune", "{run}", "--labels", "{twice.csv}", "--steps", "2"], "is labelled twice (first on line 1)"),
    (["finetune", "{run}", "--labels", "2", "--steps", "0"], "steps=0: expected an integer from 1"),
    (["finetune", "{run}", "--labels", "2", "--steps", "-1"], "steps=-1"),
    (["adapt", "{clf}", "--data", "{t.csv}", "--severity", "0"], "severity=0: expected an integer from 1 to 5"),
    (["adapt", "{clf}", "--data", "{t.csv}", "--lr", "nan"], "lr=nan: expected a finite number > 0"),
    (["adapt", "{clf}", "--data", "{t.csv}", "--epochs", "0"], "epochs=0"),
    (["pack", "{missing}", "--out", "{new}"], "no such folder"),
    (["pack", "{folder}", "--out", "{new}", "--shard-size", "0"], "shard_size=0"),
    (["pack", "{folder}", "--out", "{new}", "--image-size", "0"], "image_size=0"),
    (["benchmark", "--methods", "simclr,bogus", "--data", "{t.csv}", "--epochs", "1", "--out", "{new}"],
     "'bogus' not among"),
    # data and options of pretrain
    (["pretrain", "--data", "{header.csv}", "--out", "{new}"], "header.csv: the table has no rows"),
    (["pretrain", "--data", "{t.csv}", "--lr", "inf", "--out", "{new}"], "lr=inf: expected a finite number"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[f"{c[0][0]}: {c[1][:48]}" for c in CASES])
def test_a_bad_input_is_one_line_and_exit_2_before_any_work(argv, message, files):
    names = {"missing": files / "missing", "new": files / "new"}

    def fill(text):
        for key in ("e.npy", "two.npy", "huge.npy", "complex.npy", "t.csv", "header.csv", "narrow.csv", "twice.csv",
                    "folder.npy",
                    "folder", "file", "run", "clf"):
            text = text.replace("{" + key + "}", str(files / key))
        return text.format(**names)

    refused([fill(a) for a in argv], fill(message))
    assert not (files / "new").exists()  # nothing written: refused before any work


def test_weights_that_diverge_without_a_nan_loss_are_a_one_line_error(files, tmp_path):
    """A huge learning rate left the loss finite but the embeddings NaN, and RankMe's SVD
    crashed on them (exit 1)."""
    refused(["pretrain", "--data", str(files / "t.csv"), "--lr", "1e30", "--epochs", "1", "--no-report",
             "--monitor-samples", "8", "--out", str(tmp_path / "run")],
            "embeddings of the training samples are not finite")


def test_two_samples_cluster_into_two(files, tmp_path):
    """The eigengap estimate needs 3 samples; with 2 there is only one answer (it crashed)."""
    code, output = run_cli(["cluster", str(files / "two.npy"), "--views", "0", "--epochs", "1", "--heads", "1",
                            "--self-label-epochs", "0", "--quiet"])
    assert_clean(code, output)
    assert code == 0 and '"clusters": 2' in output, output


def test_an_output_below_missing_folders_creates_them(files, tmp_path):
    """A file output in a folder that does not exist yet (it crashed with FileNotFoundError)."""
    out = tmp_path / "a" / "b" / "n.tsv"
    code, output = run_cli(["neighbors", str(files / "e.npy"), "--k", "2", "--out", str(out), "--quiet"])
    assert_clean(code, output)
    assert code == 0 and len(out.read_text().splitlines()) == 1 + 30 * 2


def test_a_split_that_leaves_one_class_to_train_on_is_refused(tmp_path):
    """Found by the property test: three images of two classes (too few to stratify), and
    the 20% holdout took the only image of one class; the linear probe then crashed on one
    class (exit 1)."""
    from PIL import Image

    for name in ("class0/0.bmp", "class1/1.bmp", "class0/2.bmp"):
        (tmp_path / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (1, 1), int(name[-5]) * 60).save(tmp_path / "images" / name)
    refused(["pretrain", "--data", str(tmp_path / "images"), "--image-size", "8", "--epochs", "1", "--batch-size", "8",
             "--no-report", "--monitor-samples", "8", "--out", str(tmp_path / "run")],
            "the 2 training samples left by the split hold one class")
    assert not (tmp_path / "run").exists()
