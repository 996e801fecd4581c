"""Tables: (N, F) float features; SCARF's views (``selfsup.augment.tables``), an MLP."""

from __future__ import annotations

from selfsup.data.tables import TABLE_SUFFIXES, load_table_source  # registers the built-in tables
from selfsup.modalities.base import FloatModality, register


@register
class Table(FloatModality):
    name = "table"
    plural = "tables"
    formats = ("a .csv/.parquet table",)

    def accepts(self, path) -> bool:
        return path.is_file() and path.suffix.lower() in TABLE_SUFFIXES

    def load(self, path, image_size=None, label_column=None, cache_dir=None, data_mode="memory"):
        return load_table_source(path, label_column)

    def default_backbone(self, image_size=None) -> str:
        return "mlp"

    def weak_view(self):  # Gaussian noise of 0.05 feature std
        from selfsup.augment.tables import TableView

        return TableView(noise=0.05)

    def draw(self, draw, values, to_y) -> None:  # one bar per feature
        width = 64 / len(values)
        for j, v in enumerate(values):
            draw.rectangle([j * width, min(32, to_y(v)), (j + 1) * width - 1, max(32, to_y(v))], fill="#36c")
