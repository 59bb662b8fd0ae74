"""Per-paper training recipes (YAML), objectives and the resumable training loop."""

from isp_bench.train.recipe import BUDGETS, list_recipes, load_recipe, resolve_recipe
from isp_bench.train.trainer import train

__all__ = ["BUDGETS", "list_recipes", "load_recipe", "resolve_recipe", "train"]
