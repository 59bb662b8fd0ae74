"""Recipes: one YAML file per model (``isp_bench/train/recipes/<model>.yaml``), resolved for a
budget, a dataset and command-line overrides into the plain dict that every run records."""

from __future__ import annotations

import copy
import hashlib
import json
from importlib import resources
from typing import Any

import yaml

from isp_bench.errors import IspBenchError, unknown_name_error

BUDGETS = ("smoke", "short", "paper")


class RecipeError(IspBenchError):
    """A recipe that is missing or inconsistent."""


def list_recipes() -> list[str]:
    folder = resources.files("isp_bench.train") / "recipes"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_recipe(model: str) -> dict[str, Any]:
    path = resources.files("isp_bench.train") / "recipes" / f"{model}.yaml"
    if not path.is_file():
        raise unknown_name_error("training recipe (model)", model, list_recipes())
    return yaml.safe_load(path.read_text())


def _merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def resolve_recipe(model: str, *, budget: str = "short", dataset: str = "synth", seed: int = 0,
                   overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fully resolved training config: recipe + dataset overrides + budget + overrides.

    Every stage gets ``steps``, ``batch_size``, ``patch``, ``lr`` and ``objective_args`` explicitly.
    """
    if budget not in BUDGETS:
        raise RecipeError(f"budget {budget!r} is not one of {', '.join(BUDGETS)}")
    recipe = load_recipe(model)
    stages = recipe.get("stages", [])
    per_dataset = recipe.get("dataset_overrides", {}).get(dataset, {})
    for stage in stages:
        stage.update(_merge(stage, per_dataset.get("stages", {}).get(stage["name"], {})))
    size = recipe["budgets"][budget]
    resolved_stages = []
    for stage in stages:
        resolved_stages.append({
            "name": stage["name"],
            "objective": stage["objective"],
            "objective_args": stage.get("objective_args", {}),
            "trainable": stage.get("trainable"),
            "subsets": stage.get("subsets"),
            "roles": stage.get("roles"),
            "lr": stage.get("lr", recipe["optimizer"]["lr"]),
            "lr_decay_at": stage.get("lr_decay_at", []),
            "lr_decay": 0.1,
            "steps": size["steps"],
            "batch_size": size["batch_size"],
            "patch": size["patch"],
        })
    config = {
        "model": model, "paper": recipe.get("paper"), "note": recipe.get("note"), "dataset": dataset,
        "budget": budget, "seed": seed, "inputs": recipe.get("inputs", ["raw"]),
        "optimizer": recipe.get("optimizer"), "init": recipe.get("init"), "stages": resolved_stages,
        # eval.truth (a recipe's or a dataset override's): the sample key the output is scored against
        "eval": {"split": "test", "tile": 512, "overlap": 64, "previews": 4, **recipe.get("eval", {}),
                 **per_dataset.get("eval", {})},
        "checkpoint_every": 1 if budget == "smoke" else 20,
    }
    return _merge(config, overrides or {})


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
