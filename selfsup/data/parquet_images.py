"""Parquet files of encoded images: the Hugging Face ``datasets`` layout.

``datasets`` stores an ``Image`` feature as a column of ``struct<bytes: binary, path:
string>`` (the encoded file, PNG or JPEG, and where it came from) and a ``ClassLabel`` as
an integer column whose names sit in the schema's ``huggingface`` metadata. A plain binary
column of encoded images is read too. ``image_column`` finds the column (the one the
metadata calls an Image, else the only struct-with-bytes or binary column), and
``open_parquet_images`` gives a ``StreamSource`` whose samples are rows: decoded as a
folder's files are, cropped in worker processes in stream mode, or decoded into memory
when they fit (``selfsup.modalities.image``).

Parquet has no per-row offsets into compressed pages, so a row is read with its row group
(``datasets`` writes 100 image rows a group): each process keeps the last few row groups
it read. Reading in order (decoding into memory, embedding) reads every group once;
stream mode's random order reads about one group per sample, so for files much bigger
than memory ``selfsup pack`` into tar shards streams faster.
"""

from __future__ import annotations

import functools
import io
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from selfsup.data.base import DataError

LABEL_COLUMNS = ("label", "labels", "class", "target")
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # little/big-endian TIFF and BigTIFF


@dataclass(frozen=True)
class Row:
    """One encoded image in a Parquet file, read with its row group."""

    file: str
    column: str
    group: int
    row: int  # within the group
    name: str  # the row's global index, or the image's original path

    @property
    def suffix(self) -> str:
        """The original file's suffix; for a row without a path, ".tif" where its bytes are a
        TIFF (so a stack of C planes is read as C channels, not as Pillow's first page)."""
        suffix = Path(self.name).suffix
        if suffix:
            return suffix
        return ".tif" if (_group_images(self.file, self.column, self.group)[self.row] or b"")[:4] in TIFF_MAGIC else ""

    def open_bytes(self) -> io.BytesIO:
        data = io.BytesIO(_group_images(self.file, self.column, self.group)[self.row] or b"")
        data.name = self.name
        return data

    @property
    def size(self) -> int:
        return len(_group_images(self.file, self.column, self.group)[self.row] or b"")

    def __str__(self) -> str:
        return f"{self.file}:{self.name}"


@functools.lru_cache(maxsize=8)
def _group_images(file: str, column: str, group: int) -> list[bytes | None]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    values = pq.ParquetFile(file).read_row_group(group, columns=[column]).column(0)
    if pa.types.is_struct(values.type):  # struct<bytes, path>
        values = values.combine_chunks().field("bytes")
    return values.to_pylist()


def _features(schema) -> dict:
    raw = (schema.metadata or {}).get(b"huggingface")
    try:
        return json.loads(raw)["info"]["features"] if raw else {}
    except (ValueError, KeyError, TypeError):
        return {}


def _holds_bytes(field) -> bool:
    import pyarrow as pa

    kind = field.type
    if pa.types.is_struct(kind):
        index = kind.get_field_index("bytes")
        if index < 0:
            return False
        kind = kind.field(index).type
    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind)


def image_column(path: Path) -> str | None:
    """The column of encoded images in the Parquet file ``path``, or None for a table."""
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception:
        return None  # not Parquet: the table loader says what is wrong
    features = _features(schema)
    named = [n for n, f in features.items() if isinstance(f, dict) and f.get("_type") == "Image"]
    candidates = [f.name for f in schema if _holds_bytes(f)]
    chosen = [n for n in named if n in candidates] or candidates
    if len(chosen) > 1:
        preferred = [n for n in chosen if n.lower() in ("image", "img", "jpg", "png")]
        if len(preferred) != 1:
            raise DataError(f"{path}: several columns of encoded images ({', '.join(chosen)}); "
                            f"keep one (or name it 'image')")
        chosen = preferred
    return chosen[0] if chosen else None


def open_parquet_images(path: Path, image_size: int | None = None, label_column: str | None = None):
    """A ``StreamSource`` over the encoded images of ``path``; labels from the integer
    column ``label_column`` (default: one named label, labels, class or target), their
    names from the ``datasets`` metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from selfsup.data.stream import StreamSource, choose_channels, choose_size
    from selfsup.progress import stage

    column = image_column(path)
    if column is None:
        raise DataError(f"{path}: no column of encoded images (struct<bytes, path> or binary)")
    parquet = pq.ParquetFile(path)
    schema, meta = parquet.schema_arrow, parquet.metadata
    names = _original_names(parquet, column)
    rows, start = [], 0
    for group in range(meta.num_row_groups):
        count = meta.row_group(group).num_rows
        rows += [Row(str(path), column, group, r, names[start + r] if names else str(start + r)) for r in range(count)]
        start += count
    if not rows:
        raise DataError(f"{path}: no rows")
    labels = classes = None
    label = label_column or next((f.name for f in schema if f.name.lower() in LABEL_COLUMNS), None)
    if label is not None and label not in schema.names:
        raise DataError(f"{path}: no column {label!r}; columns: {', '.join(schema.names)}")
    if label is not None:
        values = parquet.read(columns=[label]).column(0)
        if not pa.types.is_integer(values.type):
            raise DataError(f"{path}: label column {label!r} holds {values.type}, not class indices")
        if values.null_count:
            raise DataError(f"{path}: label column {label!r} has {values.null_count} empty cells")
        labels = torch.tensor(values.to_pylist(), dtype=torch.long)
        feature = _features(schema).get(label, {})
        classes = feature.get("names") if isinstance(feature, dict) else None
        classes = classes or [str(c) for c in range(int(labels.max()) + 1)]
        if labels.min() < 0 or labels.max() >= len(classes):
            raise DataError(f"{path}: label column {label!r} holds {int(labels.min())}..{int(labels.max())}, "
                            f"outside the {len(classes)} class names")
    size = image_size or choose_size(rows[:256], path)
    channels = choose_channels(rows[:64], path)
    stage("reading %d images from the %r column of %s at %d px", len(rows), column, path, size)
    return StreamSource(path.name, path.parent, [str(r) for r in rows], size, labels, classes, members=rows,
                        channels=channels)


def _original_names(parquet, column: str) -> list[str] | None:
    """Each row's original file path (``datasets``' ``path`` field) when every row has a
    distinct one, so ids and suffixes are the files'; else None (ids are row numbers)."""
    import pyarrow as pa

    kind = parquet.schema_arrow.field(column).type
    if not pa.types.is_struct(kind) or kind.get_field_index("path") < 0:
        return None
    paths = []
    for group in range(parquet.metadata.num_row_groups):
        values = parquet.read_row_group(group, columns=[f"{column}.path"]).column(0)
        paths += (values.combine_chunks().field("path") if pa.types.is_struct(values.type) else values).to_pylist()
    if any(p is None for p in paths) or len(set(paths)) != len(paths):
        return None
    return paths
