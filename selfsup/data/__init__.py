"""Data sources: built-in datasets, image folders, array files, tables and time series.
Images are decoded once to uint8; tables and series are float32 (``selfsup.data.samples``)."""

from selfsup.data.base import BUILTIN_DATASETS, DataError, holdout_split
from selfsup.data.sources import ImageSource, load_array_source, load_folder_source, open_source
from selfsup.data.samples import FloatSource, model_input, standardize

__all__ = ["BUILTIN_DATASETS", "DataError", "FloatSource", "ImageSource", "holdout_split",
           "load_array_source", "load_folder_source", "model_input", "open_source", "standardize"]
