"""The pre-training config: its keys, defaults and checks. Importing it does not load Paddle, so
tools that only read a config (the Hugging Face reference of `scripts/hf_reference_pretrain.py`)
stay free of it."""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import yaml

from propeller.mixed_precision import AMP_CHOICES, LossScaling

# warmup_proportion, where set, replaces warmup_steps: each task warms up over that share of its
# own iterations (for schedules whose tasks have very different budgets).
DEFAULT_OPTIMIZATION = {"learning_rate": 1e-4, "warmup_steps": 4000, "warmup_proportion": None, "lr_schedule": "noam",
                        "weight_decay": 0.01, "beta1": 0.9, "beta2": 0.98, "epsilon": 1e-6, "clip_norm": 1.0}
KEYS = {"model", "data", "output", "seed", "batch_tokens", "log_every", "checkpoint_every",
        "keep_checkpoints", "optimization", "schedule", "mode", "amp", "loss_scaling", "dropout"}
MODES = ("static", "dygraph")
LR_SCHEDULES = ("noam", "linear")
# Keys a resumed run may change: they decide where and how often to write, not what is trained.
NOT_TRAINING_KEYS = ("output", "log_every", "checkpoint_every", "keep_checkpoints")


class PretrainError(ValueError):
    pass


def _number(value, kind, where: str):
    """`value` as an int or float (YAML reads `1e-3` as a string); a clear error otherwise."""
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if kind is int:
            if not number.is_integer():
                raise ValueError
            return int(number)
        return number
    except (TypeError, ValueError):
        raise PretrainError(f"{where} must be a{'n integer' if kind is int else ' number'}, got {value!r}") from None


def load_config(path, overrides: Dict = None) -> dict:
    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise PretrainError(f"cannot read {path}: {err}") from None
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = sorted(set(values) - KEYS)
    if unknown:
        raise PretrainError(f"{path}: unknown key(s) {unknown}")
    optimization = {**DEFAULT_OPTIMIZATION, **values.get("optimization", {})}
    bad = sorted(set(optimization) - set(DEFAULT_OPTIMIZATION))
    if bad:
        raise PretrainError(f"{path}: unknown optimization key(s) {bad}")
    values["optimization"] = optimization
    values.setdefault("seed", 1)
    values.setdefault("batch_tokens", 4096)
    values.setdefault("log_every", 10)
    values.setdefault("checkpoint_every", 500)
    values.setdefault("keep_checkpoints", 2)
    for key in ("seed", "batch_tokens", "log_every", "checkpoint_every", "keep_checkpoints"):
        values[key] = _number(values[key], int, f"{path}: {key}")
    for key, default in DEFAULT_OPTIMIZATION.items():
        if key == "warmup_proportion":
            if optimization[key] is not None:
                optimization[key] = _number(optimization[key], float, f"{path}: optimization.{key}")
                if not 0.0 < optimization[key] < 1.0:
                    raise PretrainError(f"{path}: optimization.warmup_proportion must be in (0, 1), "
                                        f"got {optimization[key]}")
        elif not isinstance(default, str):
            optimization[key] = _number(optimization[key], type(default), f"{path}: optimization.{key}")
    if optimization["lr_schedule"] not in LR_SCHEDULES:
        raise PretrainError(f"{path}: optimization.lr_schedule must be one of {LR_SCHEDULES}, "
                            f"got {optimization['lr_schedule']!r}")
    if values.get("dropout") is not None:
        values["dropout"] = _number(values["dropout"], float, f"{path}: dropout")
        if not 0.0 <= values["dropout"] < 1.0:
            raise PretrainError(f"{path}: dropout must be in [0, 1), got {values['dropout']}")
    values.setdefault("mode", "static")
    if values["mode"] not in MODES:
        raise PretrainError(f"{path}: mode must be one of {MODES}, got {values['mode']!r}")
    values.setdefault("amp", "off")
    if values["amp"] not in AMP_CHOICES:
        raise PretrainError(f"{path}: amp must be one of {AMP_CHOICES}, got {values['amp']!r}")
    scaling_keys = set(LossScaling.__dataclass_fields__)
    bad = sorted(set(values.get("loss_scaling", {})) - scaling_keys)
    if bad:
        raise PretrainError(f"{path}: unknown loss_scaling key(s) {bad}; known: {sorted(scaling_keys)}")
    for key in ("model", "data", "output", "schedule"):
        if key not in values:
            raise PretrainError(f"{path}: missing key {key!r}")
    return values
