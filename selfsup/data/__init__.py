"""Data sources: built-in datasets, image folders and array files, decoded once to uint8."""

from selfsup.data.sources import (
    BUILTIN_DATASETS,
    DataError,
    ImageSource,
    holdout_split,
    load_array_source,
    load_folder_source,
    open_source,
)

__all__ = ["BUILTIN_DATASETS", "DataError", "ImageSource", "holdout_split", "load_array_source",
           "load_folder_source", "open_source"]
