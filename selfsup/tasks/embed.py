"""Export embeddings: one row per sample, its id (file path or index) and its embedding."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from selfsup.atomic import atomic_path, write_text
from selfsup.config import ConfigError
from selfsup.tasks.common import load_embeddings


def write_embeddings(path: Path, ids: list[str], embeddings: np.ndarray, labels=None) -> None:
    """``.parquet``: columns id, embedding (fixed-size list of float32)[, label].
    ``.npy``: the (N, D) float32 array, with the ids one per line in ``<name>.ids.txt``."""
    path = Path(path)
    if path.suffix not in (".parquet", ".npy"):
        raise ConfigError(f"out={str(path)!r}: expected a .parquet or .npy file name")
    with atomic_path(path) as temporary:
        if path.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            flat = pa.array(embeddings.astype(np.float32).reshape(-1))
            columns = {"id": pa.array(ids), "embedding": pa.FixedSizeListArray.from_arrays(flat, embeddings.shape[1])}
            if labels is not None:
                columns["label"] = pa.array(np.asarray(labels))
            pq.write_table(pa.table(columns), temporary)
        else:
            with open(temporary, "wb") as f:
                np.save(f, embeddings.astype(np.float32))
            write_text(path.with_suffix(".ids.txt"), "".join(i + "\n" for i in ids))


def embed_run(run_dir, data: str | None, out, accelerator: str | None = None, devices: str | None = None) -> int:
    """Embed every sample of ``data`` (default: the run's data) with the run's backbone on
    ``accelerator``/``devices`` (default: the run's where available, else CPU); returns the
    number of rows written."""
    embedded = load_embeddings(run_dir, data, accelerator, devices)
    write_embeddings(Path(out), embedded.ids, embedded.embeddings, embedded.labels)
    return len(embedded)
