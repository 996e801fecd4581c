"""What every task starts from: the embeddings of a data source, from a run or a file.

All tasks get their embeddings through ``load_embeddings`` (any modality); SCAN's augmented
views and finetune's FixMatch views use each modality's own views.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from selfsup import modalities
from selfsup.config import ConfigError
from selfsup.data import DataError
from selfsup.devices import CPU, Placement
from selfsup.runs import check_fits


@dataclass
class Embedded:
    """Embeddings (N, D) float32 of N samples, their ids, and their labels when known."""

    embeddings: np.ndarray
    ids: list[str]
    labels: np.ndarray | None = None
    source: object | None = None  # the data source, when the embeddings were computed here
    run: tuple | None = None  # (config, method) of the run that computed them
    placement: Placement = CPU  # where the run's model computed them

    def __len__(self) -> int:
        return len(self.ids)


def embed_source(method, config, source, placement: Placement = CPU) -> np.ndarray:
    """Embeddings of every sample of ``source`` (any modality) with the run's backbone (eval
    mode), in batches on ``placement``."""
    from selfsup.evaluate.protocols import embed_images

    return embed_images(method, source.samples, config.mean, config.std, placement=placement).numpy()


def open_sized_source(data: str, image_size: int | None, label_column: str | None = None,
                      modality: str | None = None, input_shape=None):
    """The data source ``data`` as a model takes it: images at the size it was trained on;
    tables and series (opened as they are) with as many features or channels as
    ``input_shape`` when given; of ``modality`` when given."""
    array = Path(data).suffix in (".npy", ".npz")  # only what an array holds is ambiguous (selfsup.data.arrays)
    source = modalities.open_source(data, image_size, label_column, modality=modality if array else None)
    check_fits(source, data, modality, image_size, input_shape)
    if source.modality == "timeseries" and input_shape and len(input_shape) == 2:
        from selfsup.data.timeseries import resampled_to

        source = resampled_to(source, int(input_shape[1]))  # unequal lengths: to the run's, as it trained
    return source


def open_run_source(data: str, config):
    """The data source ``data`` as a run's model takes it: images at the size it was trained
    on; tables and series with the run's label column and as many features or channels."""
    return open_sized_source(data, config.image_size, config.label_column, getattr(config, "modality", None),
                             input_shape=config.input_shape)


def read_embeddings_file(path: Path) -> Embedded:
    """An embeddings file written by ``selfsup embed`` (.parquet or .npy + .ids.txt)."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            if "embedding" not in table.column_names or "id" not in table.column_names:
                raise DataError(f"{path}: expected columns id and embedding, got {table.column_names}")
            column = table.column("embedding")
            if pa.types.is_fixed_size_list(column.type):  # one flat buffer, no per-row arrays
                flat = np.concatenate([chunk.flatten().to_numpy(zero_copy_only=False) for chunk in column.chunks])
                embeddings = flat.reshape(len(table), column.type.list_size).astype(np.float32, copy=False)
            else:
                embeddings = np.stack(column.to_numpy(zero_copy_only=False)).astype(np.float32)
            labels = table.column("label").to_numpy() if "label" in table.column_names else None
            return Embedded(embeddings, [str(i) for i in table.column("id").to_pylist()], labels)
        embeddings = np.load(path, mmap_mode="r", allow_pickle=False)  # read as the tasks go
        if embeddings.dtype.kind not in "fiu":  # complex, text, bool...: not a point in R^D
            raise DataError(f"{path}: embeddings must be real numbers, got dtype {embeddings.dtype}")
        if embeddings.dtype != np.float32:
            embeddings = embeddings.astype(np.float32)
    except DataError:
        raise
    except Exception as error:
        raise DataError(f"{path}: cannot read embeddings ({error})") from None
    if embeddings.ndim != 2:
        raise DataError(f"{path}: embeddings must be a 2-D array, got shape {embeddings.shape}")
    ids_file = path.with_suffix(".ids.txt")
    ids = ids_file.read_text().splitlines() if ids_file.exists() else [str(i) for i in range(len(embeddings))]
    if len(ids) != len(embeddings):
        raise DataError(f"{ids_file}: {len(ids)} ids for {len(embeddings)} embeddings")
    return Embedded(embeddings, ids)


def load_embeddings(run_or_file: str | os.PathLike, data: str | None = None, accelerator: str | None = None,
                    devices: str | None = None) -> Embedded:
    """Embeddings of ``data`` (default: the run's data) with the run's backbone on
    ``accelerator``/``devices`` (see ``selfsup.runs.Run.placement``), or the rows of an embeddings file
    (.parquet / .npy) when ``run_or_file`` is one."""
    path = Path(run_or_file)
    if path.is_file() and path.suffix in (".parquet", ".npy"):
        if data is not None:
            raise ConfigError(f"data={data!r}: not used with an embeddings file ({path}); "
                              f"pass a run directory to embed a data source")
        return checked(read_embeddings_file(path), str(path))
    from selfsup.runs import Run

    run = Run(path)
    config, method, placement = run.config, run.method(), run.placement(accelerator, devices)
    source = open_run_source(data or config.data, config)
    labels = None if source.labels is None else source.labels.numpy()
    return checked(Embedded(embed_source(method, config, source, placement), list(source.ids), labels, source,
                            (config, method), placement), f"embeddings of {data or config.data} by {path}")


def checked(embedded: Embedded, where: str) -> Embedded:
    """``embedded`` if its embeddings can be used: a non-empty 2-D array, finite everywhere
    (a NaN row would be silently dropped or crash a solver); else a ``DataError`` naming it."""
    x = embedded.embeddings
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"{where}: expected embeddings of shape (samples, dimension), both at least 1, "
                        f"got {tuple(x.shape)}")
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(f"{where}: {len(bad)} of {len(x)} embeddings are not finite (NaN or inf), "
                        f"the first of id {embedded.ids[bad[0]]!r}")
    with np.errstate(over="ignore"):
        normal = np.isfinite(np.linalg.norm(x, axis=1))  # as the tasks normalise them, in float32
    if not normal.all():
        bad = np.flatnonzero(~normal)
        raise DataError(f"{where}: {len(bad)} of {len(x)} embeddings are too large to normalise (their length "
                        f"overflows float32), the first of id {embedded.ids[bad[0]]!r}")
    return embedded


def check_count(name: str, value: int, samples: int, at_least: int = 1, at_most: int | None = None) -> None:
    """``name=value`` is a count of samples, clusters or neighbours that ``samples`` samples allow."""
    note = f" (the data holds {samples} samples)" if at_most is None else ""
    at_most = samples if at_most is None else at_most
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not at_least <= value <= at_most:
        raise ConfigError(f"{name}={value!r}: expected an integer from {at_least} to {at_most}{note}")


@torch.no_grad()
def embed_augmented(embedded: Embedded, views: int, seed: int = 0, batch_size: int = 512) -> np.ndarray:
    """(views, N, D) embeddings of ``views`` strongly augmented copies of every sample of
    ``embedded``'s source (the SimCLR views of its modality), with the run's backbone in eval mode."""
    from dataclasses import replace

    config, method = embedded.run
    samples = embedded.source.samples
    recipe = modalities.get(embedded.source.modality).views("simclr", config.image_size)
    recipe = replace(recipe, views=recipe.views[:1])  # one view a pass
    generator = seeded(seed)
    where = embedded.placement
    was_training = method.training
    runner = where.parallel(method.eval())  # method(x) is method.embed(x)
    out = None
    try:
        for v in range(views):
            for start in range(0, len(samples), batch_size):
                (x,) = recipe(samples[start:start + batch_size].to(where.device), generator, config.mean, config.std)
                with where.autocast():
                    z = runner(x).float().cpu().numpy()
                if out is None:
                    out = np.empty((views, len(samples), z.shape[1]), dtype=np.float32)
                out[v, start:start + len(z)] = z
    finally:
        method.train(was_training)
    return out


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
