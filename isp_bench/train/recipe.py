"""Recipes: free-standing YAML files (``isp_bench/train/recipes/<recipe>.yaml``, lm-eval's task YAMLs
as model), each naming the registered model it trains. A model may have several recipes; the one
named after the model is its default (``isp-bench run --model unet`` = ``--recipe unet``). A recipe is
resolved for a budget, a dataset and command-line overrides into the plain dict every run records.

Every key of a recipe is honoured or rejected: an unknown key is a :class:`RecipeError` naming the
file and the key. ``base: NAME`` makes a recipe another's with its own keys merged over it (mappings
merged key by key, anything else replaced): an ablation trains its model on its model's schedule and
follows it when the schedule changes.

>>> config = resolve_recipe("crispnet", budget="smoke")
>>> config["model"], config["stages"][0]["steps"], config["optimizer"]["name"]
('crispnet', 1, 'adam')
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

from isp_bench.errors import IspBenchError, unknown_name_error

BUDGETS: dict[str, dict[str, Any]] = {
    "smoke": {"help": "seconds: the tests' budget", "validations_per_stage": 1, "validation_frames": 1,
              "checkpoint_every": 1},
    "short": {"help": "minutes on a CPU", "validations_per_stage": 5, "validation_frames": 4, "checkpoint_every": 20},
    "standard": {"help": "converged on the synthetic set: at most 20 minutes on one data-centre GPU",
                 "validations_per_stage": 20, "validation_frames": 8, "checkpoint_every": 500},
    "paper": {"help": "the paper's schedule", "validations_per_stage": 50, "validation_frames": 16,
              "checkpoint_every": 2000},
}
"""The training budgets, defined here only. Each recipe sizes every budget (steps, batch size, patch);
the budget sets how often training is validated (evenly spaced points per stage, the last at the
stage's end), on how many fixed validation crops, and every how many steps a checkpoint is written
(besides each stage's end): a checkpoint holds the weights and the optimiser state (130–340 MB for
the papers' models), written every few seconds on a CPU at ``short`` but at GPU speed every 20
steps would cost as much time as the steps themselves."""

OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}
"""Recipe ``optimizer.name`` → ``torch.optim`` class; its other keys except ``lr`` are that class's
keyword arguments."""

DEFAULT_LR_DECAY = 0.1
"""Factor applied to the learning rate at each ``lr_decay_at`` fraction when a stage gives no ``lr_decay``."""

RECIPE_KEYS = {"model", "paper", "note", "inputs", "optimizer", "init", "stages", "dataset_overrides", "budgets",
               "validation", "eval"}
STAGE_KEYS = {"name", "objective", "objective_args", "trainable", "subsets", "roles", "lr", "lr_decay_at", "lr_decay",
              "warmup_steps", "grad_clip_norm", "illuminant_gains"}
BUDGET_KEYS = {"steps", "batch_size", "patch", "validation", "stages", "optimizer"}
"""``stages``: per-stage settings of this budget only (``{stage name: {lr: ..., warmup_steps: ...}}``),
merged over the recipe's stages, and ``optimizer``: settings merged over the recipe's optimizer (``{betas:
[0.9, 0.99]}``): a schedule tuned for few CPU steps need not be the paper's."""
VALIDATION_KEYS = {"every", "frames", "crop"}
EVAL_KEYS = {"truth"}
"""Evaluation keys a recipe may set (``truth``: the sample key the output is scored against)."""

NOT_HASHED = ("recipe", "validation")
"""Config keys outside :func:`config_hash`: the recipe's name (its content is hashed) and the validation
settings, which only observe training (they change neither the weights nor the scores)."""


class RecipeError(IspBenchError):
    """A recipe that is missing or inconsistent."""


def _folder():
    return resources.files("isp_bench.train") / "recipes"


def list_recipes(model: str | None = None) -> list[str]:
    """Recipe names (file stems), sorted; with ``model``, only the recipes that train it."""
    names = sorted(p.name[: -len(".yaml")] for p in _folder().iterdir() if p.name.endswith(".yaml"))
    return names if model is None else [n for n in names if load_recipe(n)["model"] == model]


def _reject_unknown(where: str, mapping: Any, allowed: set[str], what: str) -> None:
    if not isinstance(mapping, dict):
        raise RecipeError(f"{where}: {what} must be a mapping, not {mapping!r}")
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise RecipeError(f"{where}: unknown {what} key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


def _check_optimizer(where: str, optimizer: dict[str, Any]) -> None:
    if optimizer.get("name") not in OPTIMIZERS:
        raise RecipeError(f"{where}: optimizer.name {optimizer.get('name')!r} is not one of {', '.join(OPTIMIZERS)}")
    import torch

    accepted = set(inspect.signature(getattr(torch.optim, OPTIMIZERS[optimizer["name"]])).parameters) - {"params"}
    _reject_unknown(where, optimizer, accepted | {"name"}, f"optimizer ({optimizer['name']})")


def validate_recipe(recipe: dict[str, Any], where: str) -> None:
    """Raise :class:`RecipeError` naming ``where`` (the file) and the key for any key the suite does not
    honour, a missing or extra budget, or an unknown optimizer."""
    _reject_unknown(where, recipe, RECIPE_KEYS, "recipe")
    if not isinstance(recipe.get("model"), str):
        raise RecipeError(f"{where}: a recipe names the registered model it trains (`model: NAME`)")
    from isp_bench.models import list_models

    trainable = list_models(include_reported_only=False)
    if recipe["model"] not in trainable:
        raise RecipeError(f"{where}: {unknown_name_error('model', recipe['model'], trainable)}")
    stages = recipe.get("stages", [])
    for stage in stages:
        _reject_unknown(f"{where} (stage {stage.get('name')!r})", stage, STAGE_KEYS, "stage")
    if stages:
        _check_optimizer(where, recipe.get("optimizer") or {})
    names = {stage.get("name") for stage in stages}
    budgets = recipe.get("budgets") or {}
    if set(budgets) != set(BUDGETS):
        raise RecipeError(f"{where}: budgets {sorted(budgets)} must be exactly {', '.join(BUDGETS)}")
    for name, size in budgets.items():
        _reject_unknown(f"{where} (budget {name})", size, BUDGET_KEYS, "budget")
        if "optimizer" in size:
            _check_optimizer(f"{where} (budgets.{name}.optimizer)", _merge(recipe.get("optimizer") or {}, size["optimizer"]))
        for stage_name, stage in (size.get("stages") or {}).items():
            if stage_name not in names:
                raise RecipeError(f"{where}: budgets.{name}.stages names stage {stage_name!r}, which the recipe "
                                  f"does not have ({', '.join(sorted(map(str, names)))})")
            _reject_unknown(f"{where} (budgets.{name}.stages.{stage_name})", stage,
                            STAGE_KEYS - {"name", "objective"} | {"steps", "batch_size", "patch"}, "budget stage")
        _reject_unknown(f"{where} (budget {name})", size.get("validation", {}), VALIDATION_KEYS, "validation")
    _reject_unknown(where, recipe.get("validation", {}), VALIDATION_KEYS, "validation")
    _reject_unknown(where, recipe.get("eval", {}), EVAL_KEYS, "eval")
    for dataset, override in (recipe.get("dataset_overrides") or {}).items():
        _reject_unknown(f"{where} (dataset_overrides.{dataset})", override, {"stages", "eval"}, "dataset override")
        _reject_unknown(f"{where} (dataset_overrides.{dataset})", override.get("eval", {}), EVAL_KEYS, "eval")
        for stage_name, stage in override.get("stages", {}).items():
            if stage_name not in names:
                raise RecipeError(f"{where}: dataset_overrides.{dataset} names stage {stage_name!r}, "
                                  f"which the recipe does not have ({', '.join(sorted(map(str, names)))})")
            _reject_unknown(f"{where} (dataset_overrides.{dataset}.stages.{stage_name})", stage, STAGE_KEYS, "stage")


RECIPE_SUFFIXES = (".yaml", ".yml")
"""What makes a recipe name the path of a file (a user's recipe, anywhere) rather than a packaged recipe's name."""


def _recipe_path(name: str):
    if name.endswith(RECIPE_SUFFIXES):  # a recipe file of the user's, anywhere
        path = Path(name)
        if not path.is_file():
            raise RecipeError(f"{path}: recipe file not found")
        return path
    path = _folder() / f"{name}.yaml"
    if not path.is_file():
        raise unknown_name_error("training recipe", name, list_recipes())
    return path


def recipe_name(name: str) -> str:
    """The name a run records for recipe ``name``: a packaged recipe's name, or a file's name with its suffix
    (``unet.yaml``), so that a user's copy of a packaged recipe never passes for it (on a leaderboard, say)."""
    return Path(name).name if name.endswith(RECIPE_SUFFIXES) else name


def load_recipe(name: str, _chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """The validated YAML of recipe ``name``: a packaged recipe, or the path of a ``.yaml`` file; one with
    ``base: OTHER`` is OTHER's recipe with its own keys merged over it."""
    import yaml

    path = _recipe_path(name)
    try:
        recipe = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise RecipeError(f"{path}: not valid YAML ({where}{getattr(error, 'problem', None) or error})") from None
    if not isinstance(recipe, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping (model:, stages:, budgets:, ...), not "
                          f"{type(recipe).__name__}")
    if "base" in recipe:
        base = recipe.pop("base")
        if str(path) in _chain:
            raise RecipeError(f"{path}: `base: {base}` leads back to this recipe ({' -> '.join(_chain)}); "
                              "a recipe cannot be its own base")
        try:
            _recipe_path(str(base))
        except IspBenchError as error:  # name the file that asked for it
            raise RecipeError(f"{path}: `base: {base}`: {error}") from None
        recipe = _merge(load_recipe(str(base), (*_chain, str(path))), recipe)
    validate_recipe(recipe, str(path))
    return recipe


def default_recipe(model: str) -> str:
    """The recipe ``--model MODEL`` runs: the one named after the model."""
    if (_folder() / f"{model}.yaml").is_file():
        return model
    from isp_bench.models import list_models

    if model not in list_models():
        raise unknown_name_error("model", model, list_models())
    raise RecipeError(f"model {model!r} has no default recipe ({model}.yaml); its recipes: "
                      f"{', '.join(list_recipes(model)) or '(none)'}; pass --recipe NAME")


def _merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def resolve_recipe(name: str, *, budget: str = "short", dataset: str = "synth", seed: int = 0,
                   precision: str = "fp32", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fully resolved training config of recipe ``name`` (packaged, or a ``.yaml`` path): recipe +
    dataset overrides + budget (its size, then its ``stages`` and ``optimizer`` settings) + overrides.

    Every stage gets ``steps``, ``batch_size``, ``patch``, ``lr``, ``lr_decay``, ``warmup_steps`` (linear
    warm-up length, 0: none), ``grad_clip_norm`` (gradient L2-norm bound, ``None``: none), ``illuminant_gains``
    only when set (``[lo, hi]``: the red and blue gains of :class:`isp_bench.data.PairDataset`'s illuminant
    augmentation) and
    ``objective_args`` explicitly; ``validation`` (``None`` without stages) gets ``every`` (steps), ``frames`` and ``crop``
    (full-resolution pixels; default: the budget's training patch), from the recipe's ``validation``,
    the budget's ``validation``, else the budget's defaults in :data:`BUDGETS`. ``precision`` is the
    resolved numeric precision (``fp32``, ``bf16``, ``fp16``: see :func:`isp_bench.devices.resolve_precision`).
    """
    if budget not in BUDGETS:
        raise RecipeError(f"budget {budget!r} is not one of {', '.join(BUDGETS)}")
    recipe = load_recipe(name)
    per_dataset = recipe.get("dataset_overrides", {}).get(dataset, {})
    size = recipe["budgets"][budget]
    stages = [_merge(_merge(stage, per_dataset.get("stages", {}).get(stage["name"], {})),
                     size.get("stages", {}).get(stage["name"], {})) for stage in recipe.get("stages", [])]
    resolved_stages = [{
        "name": stage["name"],
        "objective": stage["objective"],
        "objective_args": stage.get("objective_args", {}),
        "trainable": stage.get("trainable"),
        "subsets": stage.get("subsets"),
        "roles": stage.get("roles"),
        "lr": stage.get("lr", recipe["optimizer"]["lr"]),
        "lr_decay_at": stage.get("lr_decay_at", []),
        "lr_decay": stage.get("lr_decay", DEFAULT_LR_DECAY),
        "warmup_steps": stage.get("warmup_steps", 0),
        "grad_clip_norm": stage.get("grad_clip_norm"),
        "steps": stage.get("steps", size["steps"]),
        "batch_size": stage.get("batch_size", size["batch_size"]),
        "patch": stage.get("patch", size["patch"]),
        # only when set: a key every stage carried would change the id of every run recorded before it
        **({"illuminant_gains": stage["illuminant_gains"]} if stage.get("illuminant_gains") else {}),
    } for stage in stages]
    for stage in resolved_stages:
        _check_stage_values(f"recipe {name} (budget {budget}, stage {stage['name']})", stage)
    validation = _merge(recipe.get("validation", {}), size.get("validation", {}))
    per_stage = BUDGETS[budget]["validations_per_stage"]
    config = {
        "model": recipe["model"], "recipe": recipe_name(name), "paper": recipe.get("paper"), "note": recipe.get("note"),
        "dataset": dataset, "budget": budget, "seed": seed, "precision": precision,
        "inputs": recipe.get("inputs", ["raw"]),
        "optimizer": _merge(recipe["optimizer"], size["optimizer"]) if "optimizer" in size else recipe.get("optimizer"),
        "init": recipe.get("init"), "stages": resolved_stages,
        # eval.truth (a recipe's or a dataset override's): the sample key the output is scored against
        "eval": {"split": "test", "tile": 512, "overlap": 64, "previews": 4, **recipe.get("eval", {}),
                 **per_dataset.get("eval", {})},
        "checkpoint_every": BUDGETS[budget]["checkpoint_every"],
        "validation": {
            "every": validation.get("every") or max(1, math.ceil(size["steps"] / per_stage)),
            "frames": validation.get("frames", BUDGETS[budget]["validation_frames"]),
            "crop": validation.get("crop", size["patch"]),
        } if resolved_stages else None,
    }
    return _merge(config, overrides or {})


def _check_stage_values(where: str, stage: dict[str, Any]) -> None:
    """Raise :class:`RecipeError` naming ``where`` and the key for a resolved stage's value of the wrong kind (a
    string for a number, 0 steps, a patch of one side...), before it reaches the trainer as a torch traceback."""
    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    problems = {
        "steps": (whole(stage["steps"]) and stage["steps"] >= 1, "a whole number of steps, 1 or more"),
        "batch_size": (whole(stage["batch_size"]) and stage["batch_size"] >= 1, "a whole number, 1 or more"),
        "patch": (isinstance(stage["patch"], (list, tuple)) and len(stage["patch"]) == 2
                  and all(whole(v) and v >= 2 and v % 2 == 0 for v in stage["patch"]),
                  "[height, width] in pixels, each even (whole 2×2 CFA tiles)"),
        "lr": (number(stage["lr"]) and stage["lr"] > 0, "a positive number"),
        "lr_decay": (number(stage["lr_decay"]) and stage["lr_decay"] > 0, "a positive factor"),
        "lr_decay_at": (isinstance(stage["lr_decay_at"], list)
                        and all(number(v) and 0 < v < 1 for v in stage["lr_decay_at"]),
                        "a list of fractions of the stage, each between 0 and 1"),
        "warmup_steps": (whole(stage["warmup_steps"]) and stage["warmup_steps"] >= 0, "a whole number, 0 or more"),
        "grad_clip_norm": (stage["grad_clip_norm"] is None or number(stage["grad_clip_norm"])
                           and stage["grad_clip_norm"] > 0, "a positive number (or absent: no clipping)"),
    }
    for key, (fine, wanted) in problems.items():
        if not fine:
            raise RecipeError(f"{where}: {key} {stage[key]!r} must be {wanted}")


def config_hash(config: dict[str, Any]) -> str:
    """8 hex digits of the SHA-256 of the config (keys in :data:`NOT_HASHED` left out): the suffix of a
    run's id, so that the same experiment finds the same folder. ``precision`` is hashed unless it is
    ``fp32``: every run made before precision was recorded is fp32, and keeps its id."""
    hashed = {k: v for k, v in config.items()
              if k not in NOT_HASHED and not (k == "precision" and v == "fp32")}
    return hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:8]
