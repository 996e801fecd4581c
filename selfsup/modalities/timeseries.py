"""Time series: (N, C, T) float channels; window, warp, jitter and masking views
(``selfsup.augment.timeseries``), a 1-D ResNet."""

from __future__ import annotations

from selfsup.data.arrays import array_kind
from selfsup.data.timeseries import load_series_array, load_ts_source  # registers the built-ins
from selfsup.modalities.base import FloatModality, register

COLOURS = ["#36c", "#d33", "#3a3", "#c90", "#939", "#099"]


@register
class TimeSeries(FloatModality):
    name = "timeseries"
    plural = "time series"
    formats = ("a .ts file", "a float .npy/.npz array")
    statistics_over = (0, 2)  # per channel, over samples and time

    def accepts(self, path) -> bool:
        return path.is_file() and (path.suffix.lower() == ".ts" or (path.suffix in (".npy", ".npz")
                                                                    and array_kind(path)[0] == "timeseries"))

    def load(self, path, image_size=None, label_column=None, cache_dir=None, data_mode="memory"):
        return load_ts_source(path) if path.suffix.lower() == ".ts" else load_series_array(path)

    def default_backbone(self, image_size=None) -> str:
        return "resnet1d_small"

    def views(self, recipe, image_size=None, crop_scale=None):
        if crop_scale is None:
            return super().views(recipe)
        from selfsup.augment.registry import BY_MODALITY

        super().views(recipe)  # the same refusal for an unknown recipe
        return BY_MODALITY[self.name][recipe](crop_scale=crop_scale)

    def weak_view(self):  # a window of 80-100% with light scaling and jitter
        from selfsup.augment.timeseries import SeriesView

        return SeriesView(crop_scale=(0.8, 1.0), time_warp_p=0.0, magnitude_warp_p=0.0)

    def draw(self, draw, values, to_y) -> None:  # a line per channel, the first six
        steps = values.shape[-1]
        for c, channel in enumerate(values[:6]):
            draw.line([(t * 63 / max(1, steps - 1), to_y(v)) for t, v in enumerate(channel)], fill=COLOURS[c])
