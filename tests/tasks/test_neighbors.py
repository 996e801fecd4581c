import numpy as np
import pytest

from selfsup.cli import run
from selfsup.data import DataError
from selfsup.evaluate import neighbours as neighbours_module
from selfsup.evaluate.neighbours import NeighborIndex
from selfsup.tasks.neighbors import neighbors


def blobs(n=600, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, d)) * 5
    labels = rng.integers(0, 6, n)
    return (centres[labels] + rng.normal(size=(n, d))).astype(np.float32), labels


def test_flat_is_exact_and_hnsw_agrees_with_it(tmp_path):
    x, _ = blobs()
    flat = NeighborIndex("flat").fit(x)
    similarities, positions = flat.search(x[:50], 5)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    exact = np.argsort(-(unit[:50] @ unit.T), axis=1)[:, :5]
    assert (positions == exact).mean() > 0.99 and np.allclose(similarities[:, 0], 1, atol=1e-5)
    hnsw = NeighborIndex("hnsw").fit(x)
    _, approximate = hnsw.search(x[:50], 5)
    recall = np.mean([len(set(a) & set(e)) / 5 for a, e in zip(approximate, exact)])
    assert recall > 0.95
    hnsw.save(tmp_path / "x.faiss")
    again = NeighborIndex.load(tmp_path / "x.faiss")
    assert again.kind_ == "hnsw" and (again.search(x[:50], 5)[1] == approximate).all()


def test_neighbors_of_a_run_and_a_reused_index(digits_run, tmp_path, capsys):
    rows = neighbors(digits_run, query="0,5", k=3, index=tmp_path / "digits.faiss", out=tmp_path / "n.tsv")
    assert [r[:3] for r in rows if r[1] == 1] == [("0", 1, "0"), ("5", 1, "5")]  # itself first
    assert all(r[3] <= 1.0001 for r in rows) and len(rows) == 6
    assert (tmp_path / "n.tsv").read_text().startswith("query_id\trank\tneighbor_id\tsimilarity\n")
    reused = neighbors(digits_run, query="0,5", k=3, index=tmp_path / "digits.faiss")
    assert [r[:3] for r in reused] == [r[:3] for r in rows]
    assert np.allclose([r[3] for r in reused], [r[3] for r in rows], atol=1e-5)
    run(["neighbors", str(digits_run), "--query", "7", "--k", "2"])
    assert capsys.readouterr().out.splitlines()[0].startswith("7\t1\t7\t")
    with pytest.raises(DataError, match="query='nope'"):
        neighbors(digits_run, query="0,nope")


def test_ivf_above_the_exact_size_is_close_to_exact_and_survives_saving(tmp_path, monkeypatch):
    x, _ = blobs(n=4000, d=16)
    monkeypatch.setattr(neighbours_module, "EXACT_MAX", 3999)
    ivf = NeighborIndex().fit(x)
    assert ivf.kind_ == "ivf" and ivf.index_.nlist == 63 and ivf.index_.nprobe == 16
    assert ivf.description_ == "ivf (63 cells, 16 probed; approximate)"
    _, approximate = ivf.search(x[:200], 10)
    _, exact = NeighborIndex("flat").fit(x).search(x[:200], 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approximate, exact)])
    assert recall >= 0.9, recall
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert np.allclose(ivf.vectors([3, 7]), unit[[3, 7]], atol=1e-6)  # stored vectors by position
    ivf.save(tmp_path / "x.faiss")
    again = NeighborIndex.load(tmp_path / "x.faiss")
    assert again.description_ == ivf.description_ and (again.search(x[:200], 10)[1] == approximate).all()
    assert np.allclose(again.vectors([3]), unit[[3]], atol=1e-6)
    monkeypatch.setattr(neighbours_module, "EXACT_MAX", 4000)
    assert NeighborIndex().fit(x).kind_ == "flat"


def test_neighbors_of_a_file_says_its_index(tmp_path, monkeypatch, capsys):
    from selfsup.tasks.embed import write_embeddings

    x, _ = blobs(n=3000, d=16)
    write_embeddings(tmp_path / "e.parquet", [f"s{i}" for i in range(len(x))], x)
    monkeypatch.setattr(neighbours_module, "EXACT_MAX", 1000)
    rows = neighbors(tmp_path / "e.parquet", query="s0,s9", k=3)
    assert rows.index_description.startswith("ivf (") and [r[2] for r in rows if r[1] == 1] == ["s0", "s9"]
    everything = neighbors(tmp_path / "e.parquet", k=2, kind="flat")  # every sample queried
    assert everything.index_description == "flat (exact)" and len(everything) == 2 * len(x)
    run(["neighbors", str(tmp_path / "e.parquet"), "--query", "s4", "--k", "2"])
    captured = capsys.readouterr()
    assert captured.out.startswith("s4\t1\ts4\t") and "index: ivf (" in captured.err


def test_a_saved_index_is_never_searched_for_other_embeddings(tmp_path):
    from selfsup.config import ConfigError
    from selfsup.tasks.embed import write_embeddings

    x, _ = blobs(n=200, d=8)
    write_embeddings(tmp_path / "a.parquet", [f"a{i}" for i in range(len(x))], x)
    write_embeddings(tmp_path / "b.parquet", [f"b{i}" for i in range(len(x))], x[::-1].copy())
    index = tmp_path / "a.faiss"
    first = neighbors(tmp_path / "a.parquet", query="a3", k=2, index=index)
    assert [r[:3] for r in neighbors(tmp_path / "a.parquet", query="a3", k=2, index=index)] == [r[:3] for r in first]
    with pytest.raises(ConfigError, match=r"index=.*a.faiss: built from .*a.parquet as it was then, not from .*b.parquet"):
        neighbors(tmp_path / "b.parquet", query="b3", k=2, index=index)
    write_embeddings(tmp_path / "a.parquet", [f"a{i}" for i in range(len(x) - 1)], x[1:])  # the file changed
    with pytest.raises(ConfigError, match="remove it to rebuild it"):
        neighbors(tmp_path / "a.parquet", query="a3", k=2, index=index)
