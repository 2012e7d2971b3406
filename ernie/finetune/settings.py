"""Fine-tuning settings: defaults, a YAML file with presets (the paper's base/large columns),
and `key=value` overrides from the command line, in that order (`ernie_common.configfile`)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional, Sequence

from ernie.model.optimization import linear_warmup_decay
from ernie_common.configfile import ConfigError, apply_overrides, build, read
from ernie_common.shipped_configs import shipped

# Pre-training's precisions but float16, whose loss scaling fine-tuning neither sets nor reports
# (its skipped steps would eat a short run's warm-up unseen): bf16 is the half precision here.
AMP_CHOICES = ("off", "bf16", "auto")

CONFIG_DIR = shipped("finetune")
# `linear`: warm-up over `warmup_proportion` of the steps, then linear decay to 0. `constant`: the
# learning rate at every step, which is what the released ERNIE scripts run whenever their
# warmup_proportion is 0.0 (their optimization.py decays only after a warm-up).
LR_SCHEDULES = ("linear", "constant")
# A sentence-level head's sentence vector (ernie/finetune/heads.py).
POOLINGS = ("cls", "mean")
# The shortest sequence that holds a token of each text of a pair: [CLS] a [SEP] b [SEP].
MIN_SEQ_LEN = 5


class SettingsError(ConfigError):
    pass


@dataclasses.dataclass
class FinetuneSettings:
    config_error = SettingsError  # not a field: the error the config loader raises
    epochs: int = 3
    learning_rate: float = 5e-5
    batch_size: int = 32                       # sequences a step, over all micro-batches
    max_sequences_per_device: Optional[int] = None  # what one device holds: a larger batch is accumulated
    eval_batch_size: int = 64
    max_seq_len: int = 128
    warmup_proportion: float = 0.1
    lr_schedule: str = "linear"
    weight_decay: float = 0.01
    # None: as the model directory records it (tokenizer_config.json), else lower-cased, the released
    # scripts' default (ernie.finetune.trainer.resolve_casing)
    do_lower_case: Optional[bool] = None
    task_id: int = 0
    doc_stride: int = 128          # reading comprehension: the windows over a long context
    max_query_len: int = 64
    max_answer_len: int = 30
    n_best: int = 20
    log_every: int = 20
    max_train_examples: Optional[int] = None  # a fixed random sample of the training set
    # Off by default: sorted batches follow the label wherever length does (ernie/finetune/batching.py).
    group_by_length: bool = False
    # Sentence-level tasks: `cls` classifies the pooled [CLS] output (the released heads), `mean`
    # the mean of the top layer over the real tokens (ernie/finetune/heads.py says when it helps).
    pooling: str = "cls"
    # Mixed precision, as pre-training's `amp` (propeller/mixed_precision.py): `bf16` runs the matrix
    # products in bfloat16 (AMX or AVX512_BF16 on a CPU, or a GPU), `auto` where that pays
    # (AMX, or an AMD CPU with AVX512_BF16: `ernie.kernels.cpu_kernels.auto_amp`).
    # Off by default: the released scripts fine-tune in float32.
    amp: str = "off"

    def __post_init__(self):
        """The checks of values alone; `ernie.finetune.trainer.check_fits_model` checks them
        against the model."""
        for name in ("epochs", "batch_size", "eval_batch_size", "log_every", "doc_stride", "max_query_len",
                     "max_answer_len", "n_best", "max_sequences_per_device", "max_train_examples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SettingsError(f"{name} must be at least 1, got {value}")
        if self.max_seq_len < MIN_SEQ_LEN:
            raise SettingsError(f"max_seq_len must be at least {MIN_SEQ_LEN} ([CLS], a token of each text "
                                f"and the [SEP]s), got {self.max_seq_len}")
        if self.task_id < 0:
            raise SettingsError(f"task_id must be at least 0, got {self.task_id}")
        if self.learning_rate <= 0 or not 0 <= self.warmup_proportion < 1:
            raise SettingsError("learning_rate must be positive and warmup_proportion in [0, 1)")
        if self.lr_schedule not in LR_SCHEDULES:
            raise SettingsError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.weight_decay < 0:
            raise SettingsError(f"weight_decay must be at least 0, got {self.weight_decay}")
        if self.amp not in AMP_CHOICES:
            raise SettingsError(f"amp must be one of {AMP_CHOICES}, got {self.amp!r}"
                                + (" (float16 is for pre-training, with its loss scaling; fine-tune in bf16 on a GPU or "
                                   "CPU that has it)" if self.amp == "fp16" else ""))
        if self.pooling not in POOLINGS:
            raise SettingsError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.lr_schedule == "constant" and self.warmup_proportion:
            raise SettingsError("lr_schedule constant has no warm-up: set warmup_proportion to 0")

    @property
    def accumulate(self) -> int:
        """Micro-batches a full batch is cut into: the fewest within `max_sequences_per_device`."""
        limit = self.max_sequences_per_device or self.batch_size
        return -(-self.batch_size // limit)

    def learning_rate_at(self, step: int, total: int) -> float:
        """The learning rate of training step `step` (from 1) of `total`."""
        if self.lr_schedule == "constant":
            return self.learning_rate
        return linear_warmup_decay(self.learning_rate, int(self.warmup_proportion * total), total, step)


def config_for(task_name: str) -> Optional[Path]:
    path = CONFIG_DIR / f"{task_name}.yaml"
    return path if path.is_file() else None


def load_settings(path=None, preset: Optional[str] = None, overrides: Sequence[str] = ()) -> FinetuneSettings:
    """`overrides` are `key=value` strings, values parsed as YAML (`epochs=2`, `learning_rate=1e-4`).
    A file's `presets` (`base`, `large`, ...) hold settings for one model size; `base` applies
    unless `preset` names another."""
    values, source = {}, "defaults"
    if path is not None:
        values, source = read(path), str(path)
        presets = values.pop("presets", {}) or {}
        values.pop("task", None)
        chosen = preset or ("base" if "base" in presets else None)
        if chosen is not None:
            if chosen not in presets:
                raise SettingsError(f"{path}: no preset {chosen!r} (has {sorted(presets)})")
            values.update(presets[chosen])
    elif preset is not None:
        raise SettingsError(f"--preset {preset} needs a config file")
    try:
        return build(FinetuneSettings, apply_overrides(values, overrides), source)
    except ConfigError as err:
        raise SettingsError(str(err)) from None
