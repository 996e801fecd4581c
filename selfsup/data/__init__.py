"""Data sources: built-in datasets, image folders, array files, tables and time series.
Images are decoded once to uint8; tables and series are float32 (``selfsup.data.samples``).
``selfsup.modalities.open_source`` opens any of them by name or path."""

from selfsup.data.base import DataError, holdout_split
from selfsup.data.sources import ImageSource, load_array_source, load_folder_source
from selfsup.data.samples import FloatSource, model_input, standardize

__all__ = ["DataError", "FloatSource", "ImageSource", "holdout_split", "load_array_source",
           "load_folder_source", "model_input", "standardize"]
