"""Data sources: built-in datasets, image folders, array files, tables and time series.
Images are decoded once to uint8; tables and series are float32 (``selfsup.data.samples``)."""

from selfsup.data.sources import (
    BUILTIN_DATASETS,
    BuiltinDataset,
    DataError,
    ImageSource,
    holdout_split,
    load_array_source,
    load_folder_source,
    open_source,
)
from selfsup.data.samples import FloatSource, model_input, standardize
from selfsup.data.tables import builtin_tables
from selfsup.data.timeseries import builtin_series

# the tables and series register here: their modules import sources.py, not the other way
BUILTIN_DATASETS.update(builtin_tables(BuiltinDataset))
BUILTIN_DATASETS.update(builtin_series(BuiltinDataset))

__all__ = ["BUILTIN_DATASETS", "DataError", "FloatSource", "ImageSource", "holdout_split",
           "load_array_source", "load_folder_source", "model_input", "open_source", "standardize"]
