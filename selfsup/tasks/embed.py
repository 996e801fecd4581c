"""Export embeddings: one row per sample, its id (file path or index) and its embedding.

Embeddings stream to the file batch by batch, so memory holds one batch (and one Parquet
row group) at a time however large the data: Parquet gets a row group every
``ROW_GROUP`` rows (``pyarrow.parquet.ParquetWriter``), ``.npy`` a memory-mapped array
(``np.lib.format.open_memmap``) filled in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from selfsup.atomic import atomic_path, check_output, write_text
from selfsup.config import ConfigError

ROW_GROUP = 16_384


def _check_suffix(path: Path) -> None:
    if path.suffix not in (".parquet", ".npy"):
        raise ConfigError(f"out={str(path)!r}: expected a .parquet or .npy file name")


def write_embedding_batches(path, ids: list[str], batches: Iterable[np.ndarray], labels=None) -> int:
    """Write ``batches`` (float (B, D) arrays, consecutive rows of ``ids``) as they come:
    ``.parquet``: columns id, embedding (fixed-size list of float32)[, label], a row group
    every ``ROW_GROUP`` rows; ``.npy``: the (N, D) float32 array (N = len(ids)), filled
    through a memory map, with the ids one per line in ``<name>.ids.txt``. Returns the
    number of rows written; a batch count that does not match ``ids`` is an error."""
    path = Path(path)
    _check_suffix(path)
    labels = None if labels is None else np.asarray(labels)
    written = 0
    with atomic_path(path) as temporary:
        if path.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            writer, pending, flushed = None, np.empty((0, 0), dtype=np.float32), 0

            def flush(block):  # one row group
                nonlocal writer, flushed
                rows = slice(flushed, flushed + len(block))
                columns = {"id": pa.array(ids[rows], type=pa.string()),
                           "embedding": pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1)), block.shape[1])}
                if labels is not None:
                    columns["label"] = pa.array(labels[rows])
                table = pa.table(columns)
                if writer is None:
                    writer = pq.ParquetWriter(temporary, table.schema)
                writer.write_table(table, row_group_size=len(block))
                flushed += len(block)

            try:
                for batch in batches:
                    batch = np.asarray(batch, dtype=np.float32)
                    pending = np.concatenate([pending, batch]) if len(pending) else batch
                    written += len(batch)
                    if written > len(ids):
                        break
                    while len(pending) >= ROW_GROUP:
                        flush(pending[:ROW_GROUP])
                        pending = pending[ROW_GROUP:]
                if len(pending) and written == len(ids):
                    flush(pending)
            finally:
                if writer is not None:
                    writer.close()
        else:
            array = None
            for batch in batches:
                batch = np.asarray(batch, dtype=np.float32)
                if array is None:
                    array = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.float32,
                                                      shape=(len(ids), batch.shape[1]))
                if written + len(batch) > len(ids):
                    written += len(batch)
                    break
                array[written:written + len(batch)] = batch
                written += len(batch)
            if array is not None:
                array.flush()
                del array
        if written != len(ids) or written == 0:
            raise ConfigError(f"out={str(path)!r}: {written} embeddings for {len(ids)} ids; nothing written")
    if path.suffix == ".npy":
        write_text(path.with_suffix(".ids.txt"), "".join(i + "\n" for i in ids))
    return written


def write_embeddings(path, ids: list[str], embeddings: np.ndarray, labels=None) -> None:
    """``embeddings`` (N, D) of ``ids`` to ``path`` (.parquet or .npy, as ``write_embedding_batches``)."""
    write_embedding_batches(path, ids, (embeddings[s:s + ROW_GROUP] for s in range(0, len(embeddings), ROW_GROUP)),
                            labels)


def embed_run(run_dir, data: str | None, out, accelerator: str | None = None, devices: str | None = None,
              batch_size: int = 512) -> int:
    """Embed every sample of ``data`` (default: the run's data) with the run's backbone on
    ``accelerator``/``devices`` (default: the run's where available, else CPU), writing each
    batch to ``out`` as it is embedded; returns the number of rows written."""
    from selfsup.evaluate.protocols import embed_batches
    from selfsup.runs import Run
    from selfsup.tasks.common import open_run_source

    out = check_output(out)
    _check_suffix(out)
    run = Run(run_dir)
    config, method, placement = run.config, run.method(), run.placement(accelerator, devices)
    source = open_run_source(data or config.data, config)
    labels = None if source.labels is None else np.asarray(source.labels)
    batches = (z.numpy() for z in embed_batches(method, source.samples, config.mean, config.std, batch_size, placement))
    return write_embedding_batches(out, list(source.ids), batches, labels)
