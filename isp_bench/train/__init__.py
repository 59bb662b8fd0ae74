"""Training recipes (free-standing YAML naming their model), objectives and the resumable training loop.

Only :mod:`isp_bench.train.recipe` is light (the CLI imports its budgets); the loop, which needs torch,
is imported on first use of :func:`train`.
"""

from isp_bench.train.recipe import BUDGETS, default_recipe, list_recipes, load_recipe, resolve_recipe

__all__ = ["BUDGETS", "default_recipe", "list_recipes", "load_recipe", "resolve_recipe", "train"]


def __getattr__(name: str):
    if name == "train":
        from isp_bench.train.trainer import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
