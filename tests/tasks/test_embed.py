"""`embed` streams: row groups (Parquet) or a memory map (.npy) filled batch by batch."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from selfsup.config import ConfigError
from selfsup.tasks import embed as embed_module
from selfsup.tasks.common import load_embeddings, read_embeddings_file
from selfsup.tasks.embed import embed_run, write_embedding_batches


def batches_of(x, size):
    return (x[s:s + size] for s in range(0, len(x), size))


@pytest.mark.parametrize("suffix", [".parquet", ".npy"])
def test_batches_round_trip(tmp_path, monkeypatch, suffix):
    monkeypatch.setattr(embed_module, "ROW_GROUP", 100)
    x = np.random.default_rng(0).normal(size=(450, 7)).astype(np.float32)
    ids, labels = [f"s{i}" for i in range(450)], np.arange(450) % 3
    path = tmp_path / f"e{suffix}"
    assert write_embedding_batches(path, ids, batches_of(x, 32), labels) == 450
    back = read_embeddings_file(path)
    assert np.array_equal(back.embeddings, x) and back.ids == ids
    if suffix == ".parquet":
        assert np.array_equal(back.labels, labels)
        assert pq.ParquetFile(path).num_row_groups == 5  # 4 x 100 and the rest
    else:
        assert isinstance(back.embeddings, np.memmap)  # read as the tasks go, not loaded


@pytest.mark.parametrize("suffix", [".parquet", ".npy"])
def test_a_short_or_long_stream_writes_nothing(tmp_path, suffix):
    x = np.ones((10, 3), dtype=np.float32)
    for ids in (["a"] * 11, ["a"] * 9):
        with pytest.raises(ConfigError, match=f"embeddings for {len(ids)} ids; nothing written"):
            write_embedding_batches(tmp_path / f"e{suffix}", ids, batches_of(x, 4))
    assert list(tmp_path.iterdir()) == []


def test_embed_run_writes_row_groups_as_it_embeds(digits_run, tmp_path, monkeypatch):
    monkeypatch.setattr(embed_module, "ROW_GROUP", 256)
    written = []
    real = embed_module.write_embedding_batches

    def spy(path, ids, batches, labels=None):
        def watched():
            for batch in batches:
                written.append(len(batch))
                yield batch
        return real(path, ids, watched(), labels)

    monkeypatch.setattr(embed_module, "write_embedding_batches", spy)
    rows = embed_run(digits_run, None, tmp_path / "e.parquet")
    expected = load_embeddings(digits_run)
    assert rows == len(expected) == sum(written) and max(written) <= 512  # batches, not one array
    assert pq.ParquetFile(tmp_path / "e.parquet").num_row_groups == -(-rows // 256)
    back = read_embeddings_file(tmp_path / "e.parquet")
    assert back.ids == expected.ids and np.allclose(back.embeddings, expected.embeddings, atol=1e-5)
