"""The pre-training config: its keys, types, defaults and checks, read by the framework's one
config loader (`ernie_common.configfile`: a YAML file, then `--set key=value` overrides).
Importing it does not load Paddle, so tools that only read a config (the Hugging Face reference
of `scripts/hf_reference_pretrain.py`) stay free of it."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence

from ernie_common.configfile import ConfigError, load, to_dict
from propeller.mixed_precision import AMP_CHOICES, LossScaling

MODES = ("static", "dygraph")
LR_SCHEDULES = ("noam", "linear")
# Keys a resumed run may change: they decide where and how often to write, not what is trained.
NOT_TRAINING_KEYS = ("output", "log_every", "checkpoint_every", "keep_checkpoints", "step_timeout")


class PretrainError(ConfigError):
    """A pre-training run that cannot start: its config, its data, its checkpoint."""


@dataclasses.dataclass
class Optimization:
    """Adam with decoupled weight decay (skipping layer-norm and bias parameters) and global-norm
    clipping; each task's learning rate follows its own schedule (`ernie.model.optimization`)."""
    config_error = PretrainError  # not a field: the error the config loader raises
    learning_rate: float = 1e-4
    warmup_steps: int = 4000
    # where set, replaces warmup_steps: each task warms up over that share of its own iterations
    warmup_proportion: Optional[float] = None
    lr_schedule: str = "noam"
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.98
    epsilon: float = 1e-6
    clip_norm: float = 1.0

    def __post_init__(self):
        if self.lr_schedule not in LR_SCHEDULES:
            raise PretrainError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.warmup_proportion is not None and not 0.0 < self.warmup_proportion < 1.0:
            raise PretrainError(f"warmup_proportion must be in (0, 1), got {self.warmup_proportion}")
        if self.learning_rate <= 0:
            raise PretrainError(f"learning_rate must be positive, got {self.learning_rate}")


@dataclasses.dataclass
class PretrainConfig:
    config_error = PretrainError
    data: str                          # the shard directory `data_gen make` wrote
    output: str
    schedule: Dict[str, Any]           # checked by `ernie.pretrain.schedule`
    model: Optional[str] = None        # a model preset; optional with init_model (the model's own config)
    init_model: Optional[str] = None   # continue from this model directory (`ernie.pretrain.init_model`)
    task_modules: List[str] = dataclasses.field(default_factory=list)  # a user's task modules
    seed: int = 1
    batch_tokens: int = 4096
    length_pool: int = 1               # batches' worth of examples sorted by length together (ernie.pretrain.data)
    dropout: Optional[float] = None    # the encoder's dropout while pre-training (the saved model keeps the preset's)
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    mode: str = "static"
    amp: str = "off"
    corrupt_shards: str = "error"      # or skip: examples whose bytes fail their checksum are skipped, counted
    step_timeout: float = 600.0        # data-parallel: seconds a step may take before the job counts as stuck
    loss_scaling: LossScaling = dataclasses.field(default_factory=LossScaling)
    optimization: Optimization = dataclasses.field(default_factory=Optimization)

    def __post_init__(self):
        if self.model is None and self.init_model is None:
            raise PretrainError("missing key 'model' (a model preset; or init_model: a model directory)")
        if self.mode not in MODES:
            raise PretrainError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.corrupt_shards not in ("error", "skip"):
            raise PretrainError(f"corrupt_shards must be error or skip, got {self.corrupt_shards!r}")
        if self.amp not in AMP_CHOICES:
            raise PretrainError(f"amp must be one of {AMP_CHOICES}, got {self.amp!r}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise PretrainError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.step_timeout <= 0:
            raise PretrainError(f"step_timeout must be positive, got {self.step_timeout}")
        for name in ("batch_tokens", "length_pool", "log_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise PretrainError(f"{name} must be at least 1, got {getattr(self, name)}")

    def training_settings(self) -> Dict[str, Any]:
        """Everything but where and how often the run writes: what a resumed run must share.
        `length_pool` at 1 is left out, so checkpoints written before it existed still resume."""
        return {k: v for k, v in to_dict(self).items()
                if k not in NOT_TRAINING_KEYS and not (k == "length_pool" and v == 1)}


def load_config(path, options: Dict[str, Any] = None, overrides: Sequence[str] = ()) -> PretrainConfig:
    """The config of `path`, the command's own options (`--output`, `--mode`, `--amp`) and
    `key=value` overrides (`--set`) on top."""
    try:
        return load(PretrainConfig, path, overrides, extra=options)
    except PretrainError:
        raise
    except ConfigError as err:
        raise PretrainError(str(err)) from None
