"""Fine-tuning settings: defaults, a YAML file with presets (the paper's base/large columns),
and `key=value` overrides from the command line, in that order."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

import yaml

DEFAULTS = {
    "epochs": 3, "learning_rate": 5e-5, "batch_size": 32, "eval_batch_size": 64, "max_seq_len": 128,
    "warmup_proportion": 0.1, "weight_decay": 0.01, "do_lower_case": True, "task_id": 0,
    "doc_stride": 128, "max_query_len": 64, "max_answer_len": 30, "n_best": 20, "log_every": 20,
    "max_train_examples": None, "group_by_length": True,
}
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "finetune"


class SettingsError(ValueError):
    pass


def config_for(task_name: str) -> Optional[Path]:
    path = CONFIG_DIR / f"{task_name}.yaml"
    return path if path.is_file() else None


def load_settings(path=None, preset: Optional[str] = None, overrides: Sequence[str] = ()) -> Dict:
    """`overrides` are `key=value` strings, values parsed as YAML (`epochs=2`, `learning_rate=1e-4`)."""
    settings = dict(DEFAULTS)
    if path is not None:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        presets = values.pop("presets", {})
        values.pop("task", None)
        _merge(settings, values, str(path))
        chosen = preset or ("base" if "base" in presets else None)
        if chosen is not None:
            if chosen not in presets:
                raise SettingsError(f"{path}: no preset {chosen!r} (has {sorted(presets)})")
            _merge(settings, presets[chosen], f"{path}: preset {chosen}")
    elif preset is not None:
        raise SettingsError(f"--preset {preset} needs a config file")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SettingsError(f"override {item!r} is not key=value")
        _merge(settings, {key: yaml.safe_load(value)}, "--set")
    return settings


def _merge(settings: Dict, values: Dict, source: str) -> None:
    unknown = sorted(set(values) - set(DEFAULTS))
    if unknown:
        raise SettingsError(f"{source}: unknown setting(s) {unknown}; known: {sorted(DEFAULTS)}")
    for key, value in values.items():
        settings[key] = _typed(key, value, source)


def _typed(key: str, value, source: str):
    """The value in the type of its default (YAML reads `1e-3` as a string, `3` as an int)."""
    default = DEFAULTS[key]
    kind = int if default is None else type(default)
    if value is None or isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    try:
        if kind is bool:
            raise ValueError
        return kind(float(value)) if kind is int and float(value).is_integer() else kind(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{source}: {key} must be a {kind.__name__}, got {value!r}") from None
