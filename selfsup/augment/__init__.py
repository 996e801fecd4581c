"""Batched, device-agnostic augmentation: ops with per-sample parameters, and recipes."""

from selfsup.augment.recipes import RECIPES, Recipe, ViewSpec, create, make_view

__all__ = ["RECIPES", "Recipe", "ViewSpec", "create", "make_view", "views_for"]


def views_for(modality: str, recipe: str, image_size: int | None = None, crop_scale=None):
    """The views a method whose recipe is ``recipe`` gets on ``modality`` data: the image
    recipes as they are, and each modality's own views for the recipe names it knows."""
    from selfsup.augment.tables import TABLE_RECIPES
    from selfsup.augment.timeseries import SERIES_RECIPES

    if modality == "image":
        return create(recipe, image_size, **({} if crop_scale is None else {"crop_scale": crop_scale}))
    known = {"table": TABLE_RECIPES, "timeseries": SERIES_RECIPES}[modality]
    if recipe not in known:
        raise ValueError(f"no {modality} views for recipe {recipe!r} (methods with recipe "
                         f"{', '.join(known)} work on {modality} data)")
    if modality == "timeseries" and crop_scale is not None:
        return known[recipe](crop_scale=crop_scale)
    return known[recipe]()
