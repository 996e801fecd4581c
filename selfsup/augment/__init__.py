"""Batched, device-agnostic augmentation: ops with per-sample parameters, and recipes."""

from selfsup.augment.recipes import RECIPES, Recipe, ViewSpec, create, make_view

__all__ = ["RECIPES", "Recipe", "ViewSpec", "create", "make_view"]
