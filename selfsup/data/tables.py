"""Table sources: CSV and Parquet files, and scikit-learn's bundled tables.

Numeric columns become float features. Text, boolean and dictionary columns are
categorical and one-hot encoded (the 31 most frequent values get a column each, the rest
share an "other" column). Missing numeric values are filled with the column median and a
missing categorical value is a category of its own; a warning names every column with
gaps and how many. ``label_column`` names the column of class labels, used for
evaluation only: it never reaches the features.

Nothing is silently misread:

- a text column whose values are numbers but for a few cells (at most ``STRAY_FRACTION``,
  5%, of its non-missing cells, e.g. one '?' among 1,000 numbers) stays numeric: those
  cells are missing values, and a warning names the column, how many and the first few
  with their row (counted from 1, the header not counted);
- a column that identifies rows rather than describing them is dropped with a warning
  naming it: text with more than ``MAX_CATEGORIES`` distinct values that are also more
  than half of its non-missing values (an ID, a name, free text: its one-hot columns would
  be noise), and integers unique per row that are consecutive (0, 1, 2, ...) or whose
  name says id (``id``, ``*_id``, ``uuid``, ``index``, ``key``).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import torch

from selfsup.data.samples import FloatSource, labels_from_values
from selfsup.data.base import BuiltinDataset, DataError, register_dataset

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
MAX_CATEGORIES = 32  # one-hot columns per categorical feature, "other" included
STRAY_FRACTION = 0.05  # a numeric column may hold this fraction of non-numeric cells (then missing)
NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
ID_NAME = re.compile(r"(^|[_\W])(id|uuid|guid|index|key)$", re.IGNORECASE)


def read_table(path: Path):
    """The file as a pyarrow table."""
    try:
        if path.suffix.lower() == ".csv":
            import pyarrow.csv as csv

            # an empty text field is a missing value, as an empty number field is
            return csv.read_csv(path, convert_options=csv.ConvertOptions(strings_can_be_null=True))
        import pyarrow.parquet as pq

        return pq.read_table(path)
    except Exception as error:
        raise DataError(f"{path}: cannot read table ({str(error).splitlines()[0][:200]})") from None


def numbers_with_strays(name: str, column):
    """A text ``column`` of numbers with at most ``STRAY_FRACTION`` non-numeric cells as
    (float64 column with those cells missing, a line naming them), or None when it is text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    present = len(column) - column.null_count
    numeric = pc.fill_null(pc.match_substring_regex(column, NUMBER), False)
    strays = present - pc.sum(numeric).as_py() if present else 0
    if present == 0 or strays == 0 or strays > STRAY_FRACTION * present:
        return None
    values = pc.cast(pc.utf8_trim_whitespace(pc.if_else(numeric, column, pa.scalar(None, column.type))),
                     pa.float64())
    rows = np.flatnonzero(~np.asarray(numeric) & ~np.asarray(pc.is_null(column)))
    text = column.to_pylist()
    examples = ", ".join(f"{text[i]!r} at row {i + 1}" for i in rows[:3]) + (", ..." if len(rows) > 3 else "")
    return values, (f"column {name!r}: {strays} non-numeric value{'s' if strays > 1 else ''} ({examples}) "
                    f"treated as missing")


def identifies_rows(name: str, column) -> str | None:
    """Why ``column`` identifies rows rather than describing them (then it is no feature), or None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    present = len(column) - column.null_count
    if present == 0:
        return None
    distinct = pc.count_distinct(column).as_py()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if distinct > MAX_CATEGORIES and distinct > present / 2:
            what = "unique per row: an ID or free text" if distinct == len(column) else "free text or names"
            return f"{name!r} (text, {distinct} distinct values in {len(column)} rows: {what})"
        return None
    if pa.types.is_integer(kind) and column.null_count == 0 and distinct == len(column) > 1:
        values = np.sort(np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64))
        if ID_NAME.search(name) or bool((np.diff(values) == 1).all()):
            return f"{name!r} (integers unique per row: an ID)"
    return None


def encode_column(name: str, column) -> tuple[np.ndarray, list[str], int]:
    """(N, k) float features of one column, their names, and how many values were missing."""
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = column.null_count
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        values = np.array(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        gaps = ~np.isfinite(values)
        if gaps.all():
            raise DataError(f"column {name!r}: no numeric value in any row")
        values[gaps] = np.median(values[~gaps])
        return values[:, None], [name], int(gaps.sum())
    text = [None if v is None else str(v) for v in column.to_pylist()]
    filled = ["(missing)" if v is None else v for v in text]
    levels, counts = np.unique(filled, return_counts=True)
    kept = list(levels[np.argsort(-counts, kind="stable")][:MAX_CATEGORIES - 1])
    columns = [f"{name}={level}" for level in kept]
    lookup = {level: i for i, level in enumerate(kept)}
    index = np.array([lookup.get(v, len(kept)) for v in filled])
    if len(levels) > len(kept):
        columns.append(f"{name}=(other)")
    onehot = np.zeros((len(filled), len(columns)))
    onehot[np.arange(len(filled)), index] = 1.0
    return onehot, columns, missing


def table_source(name: str, table, label_column: str | None) -> FloatSource:
    """A pyarrow table as a source; ``label_column`` (if given) becomes the labels."""
    import pyarrow as pa

    names = table.column_names
    if table.num_rows == 0:  # before the columns: an empty column has no type to encode
        raise DataError(f"{name}: the table has no rows")
    labels = classes = None
    if label_column is not None:
        if label_column not in names:
            raise DataError(f"{name}: no column {label_column!r} for the labels; columns: {', '.join(names)}")
        values = table.column(label_column).to_pylist()
        if any(v is None for v in values):
            raise DataError(f"{name}: column {label_column!r} has {values.count(None)} missing label(s)")
        labels, classes = labels_from_values(np.array(values, dtype=object), f"{name}: column {label_column!r}")
    parts, features, gaps, dropped, strays = [], [], {}, [], []
    for column_name in names:
        if column_name == label_column:
            continue
        column = table.column(column_name).combine_chunks()
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            numbers = numbers_with_strays(column_name, column)
            if numbers is not None:
                column, line = numbers
                strays.append(line)
        why = identifies_rows(column_name, column)
        if why:
            dropped.append(why)
            continue
        try:
            values, columns, missing = encode_column(column_name, column)
        except DataError as error:
            raise DataError(f"{name}: {error}") from None
        parts.append(values)
        features += columns
        if missing:
            gaps[column_name] = missing
    for line in strays:
        warnings.warn(f"{name}: {line}", stacklevel=3)
    if dropped:
        warnings.warn(f"{name}: dropped {len(dropped)} column(s) that identify rows, not features: "
                      f"{'; '.join(dropped)}", stacklevel=3)
    if not parts:
        besides = f" besides the label column {label_column!r}" if label_column else ""
        raise DataError(f"{name}: no feature columns{besides}"
                        + (f" (dropped: {'; '.join(dropped)})" if dropped else ""))
    if gaps:
        listing = ", ".join(f"{c}: {n}" for c, n in gaps.items())
        warnings.warn(f"{name}: filled missing values (numeric: column median; categorical: a "
                      f"'(missing)' category) in {len(gaps)} column(s): {listing}", stacklevel=3)
    samples = torch.from_numpy(np.concatenate(parts, axis=1).astype(np.float32))
    return FloatSource(name, samples, [str(i) for i in range(len(samples))], labels, classes,
                       "table", features)


def load_table_source(path: Path, label_column: str | None = None) -> FloatSource:
    """A CSV or Parquet file; ``label_column`` holds class labels (evaluation only)."""
    return table_source(path.name, read_table(path), label_column)


def _sklearn_table(loader_name: str, name: str):
    def load(image_size=None) -> FloatSource:
        from sklearn import datasets

        bunch = getattr(datasets, loader_name)()
        return FloatSource(name, torch.from_numpy(bunch.data.astype(np.float32)),
                           [str(i) for i in range(len(bunch.data))], torch.from_numpy(bunch.target).long(),
                           [str(c) for c in bunch.target_names], "table", [str(f) for f in bunch.feature_names])
    load.__doc__ = f"scikit-learn's bundled {name} table (the bunch's class labels)."
    return load


def builtin_tables() -> dict:
    """The built-in tables as ``selfsup.data.sources.BuiltinDataset`` entries."""
    rows = [("wine", "load_wine", 178, "scikit-learn wine recognition: 13 chemical measurements, 3 cultivars"),
            ("breast_cancer", "load_breast_cancer", 569, "scikit-learn breast cancer Wisconsin: 30 cell-nucleus "
                                                          "features, benign/malignant"),
            ("iris", "load_iris", 150, "scikit-learn iris: 4 flower measurements, 3 species")]
    return {name: BuiltinDataset(name, "table", size, True, description, _sklearn_table(loader, name))
            for name, loader, size, description in rows}


for _dataset in builtin_tables().values():
    register_dataset(_dataset)
