"""Batched, device-agnostic augmentation: ops with per-sample parameters, and recipes."""

# Importing a module registers its recipes.
from selfsup.augment import recipes, tables, timeseries  # noqa: F401
from selfsup.augment.recipes import RECIPES, Recipe, ViewSpec, create, make_view
from selfsup.augment.registry import BY_MODALITY, register

__all__ = ["BY_MODALITY", "RECIPES", "Recipe", "ViewSpec", "create", "make_view", "register", "views_for"]


def views_for(modality: str, recipe: str, image_size: int | None = None, crop_scale=None):
    """The views a method whose recipe is ``recipe`` gets on ``modality`` data: the image
    recipes as they are, and each modality's own views for the recipe names it knows."""
    if modality == "image":
        return create(recipe, image_size, **({} if crop_scale is None else {"crop_scale": crop_scale}))
    known = BY_MODALITY[modality]
    if recipe not in known:
        raise ValueError(f"no {modality} views for recipe {recipe!r} (methods with recipe "
                         f"{', '.join(known)} work on {modality} data)")
    if modality == "timeseries" and crop_scale is not None:
        return known[recipe](crop_scale=crop_scale)
    return known[recipe]()
