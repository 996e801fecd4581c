"""Batched, device-agnostic augmentation: ops with per-sample parameters, and recipes."""

# Importing a module registers its recipes.
from selfsup.augment import recipes, tables, timeseries  # noqa: F401
from selfsup.augment.recipes import RECIPES, Recipe, ViewSpec, create, make_view
from selfsup.augment.registry import BY_MODALITY, register

__all__ = ["BY_MODALITY", "RECIPES", "Recipe", "ViewSpec", "create", "make_view", "register"]
