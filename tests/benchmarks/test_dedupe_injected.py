"""benchmarks/dedupe_injected.py's scoring: a flagged pair of two originals is wrong unless a
person judged them one photograph (``--labels``); then it is correct, and neither counts as
wrongly flagged on the clean set."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("dedupe_injected", ROOT / "benchmarks" / "dedupe_injected.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

# originals a, b, c, d; one injected copy of a
IDS = ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "zz-flip-a.png"]
FAMILY = {"a.jpg": 0, "b.jpg": 1, "c.jpg": 2, "d.jpg": 3, "zz-flip-a.png": 0}
KIND_OF = {"zz-flip-a.png": "flip"}


def test_pairs_of_originals_count_as_correct_only_when_judged_same(tmp_path):
    labels = tmp_path / "judged.csv"
    labels.write_text("a,b,score,verdict\nb.jpg,c.jpg,0.98,same\nc.jpg,d.jpg,0.97,different\n")
    same = bench.read_labels(str(labels))
    groups = [[0, 4], [1, 2, 3]]  # a with its copy; b, c, d: 3 pairs of originals
    raw = bench.pair_scores(groups, IDS, FAMILY, KIND_OF)
    judged = bench.pair_scores(groups, IDS, FAMILY, KIND_OF, same)
    assert raw["flagged_pairs"] == judged["flagged_pairs"] == 4
    assert raw["correct"] == 1 and judged["correct"] == 2  # (b, c) judged same; (b, d), (c, d) not
    assert raw["recall"] == judged["recall"] == 1.0 and raw["flip"]["recall"] == 1.0

    clean_ids = IDS[:4]
    clean = [[1, 2, 3]]
    assert bench.clean_scores(clean, 4)["flagged"] == 0.75
    judged_clean = bench.clean_scores(clean, 4, clean_ids, same)
    # b and c have a partner judged the same; d has none: wrongly flagged, and wrongly dropped
    assert judged_clean["flagged"] == 0.25 and judged_clean["dropped"] == 0.25
    assert bench.original_pairs(groups, IDS, KIND_OF) == {("b.jpg", "c.jpg"), ("b.jpg", "d.jpg"), ("c.jpg", "d.jpg")}


def test_a_verdict_other_than_same_or_different_is_refused(tmp_path):
    labels = tmp_path / "judged.csv"
    labels.write_text("a,b,score,verdict\nb.jpg,c.jpg,0.98,maybe\n")
    with pytest.raises(SystemExit, match="verdict 'maybe' of b.jpg, c.jpg"):
        bench.read_labels(str(labels))
