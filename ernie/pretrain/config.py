"""The pre-training config: its keys, types, defaults and checks, read by the framework's one
config loader (`ernie_common.configfile`: a YAML file, then `--set key=value` overrides; the
file's relative paths read from its folder, `configfile.config_path`). Importing it does not
load Paddle, so tools that only read a config (the Hugging Face reference of
`scripts/hf_reference_pretrain.py`) stay free of it."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from data_gen.shards import read_manifest
from ernie_common.cli import MAX_SEED
from ernie_common.configfile import ConfigError, load, to_dict
from propeller.mixed_precision import AMP_CHOICES, LossScaling

MODES = ("static", "dygraph")
LR_SCHEDULES = ("noam", "linear", "constant")
# Keys a resumed run may change: they decide where and how often to write, not what is trained.
NOT_TRAINING_KEYS = ("output", "log_every", "checkpoint_every", "keep_checkpoints", "step_timeout",
                     "max_skipped_steps", "save_models_at_tokens")


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
        if self.warmup_steps < 0 or (self.warmup_steps == 0 and self.warmup_proportion is None
                                     and self.lr_schedule == "noam"):
            raise PretrainError(f"warmup_steps must be at least {1 if self.lr_schedule == 'noam' else 0} "
                                f"(noam's decay is set by its warm-up), got {self.warmup_steps}")
        for name, low, high in (("weight_decay", 0.0, None), ("beta1", 0.0, 1.0), ("beta2", 0.0, 1.0)):
            value = getattr(self, name)
            if value < low or (high is not None and value >= high):
                raise PretrainError(f"{name} must be in [{low}, {high if high is not None else 'inf'}), got {value}")
        for name in ("epsilon", "clip_norm"):  # (Adam divides by epsilon where a moment is 0)
            if getattr(self, name) <= 0:
                raise PretrainError(f"{name} must be positive, got {getattr(self, name)}")


DEFAULT_BATCH_TOKENS = 4096
MIN_BATCH_TOKENS = 16  # the shortest example with its special tokens must fit a micro-batch


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """One step's batch: `accumulate` micro-batches of at most `micro_tokens` tokens (batch size x
    longest example) on each of `ranks` ranks, one update."""
    ranks: int
    accumulate: int
    micro_tokens: int

    @property
    def global_tokens(self) -> int:
        return self.ranks * self.accumulate * self.micro_tokens

    def describe(self) -> str:
        return (f"{self.global_tokens:,} tokens a step = {self.ranks} rank(s) x {self.accumulate} micro-batch(es) "
                f"of {self.micro_tokens:,}")


@dataclasses.dataclass
class Heldout:
    """Forgetting, measured: `examples` examples of every task's stream are kept out of training,
    and the held-out loss and accuracy of every task of the schedule, trained yet or not, are
    logged before the first step, at the end of every stage and every `every` steps (0: stage ends
    only). The examples are drawn by the run's seed, the same on every rank: from the shards'
    held-out documents where `data_gen make` wrote them (`heldout_documents`), else from all the
    training shards, kept out of training."""
    config_error = PretrainError
    examples: int = 0                  # per task stream (0: no held-out evaluation)
    every: int = 0

    def __post_init__(self):
        if self.examples < 0 or self.every < 0:
            raise PretrainError(f"heldout: examples and every must be at least 0, got {self.examples}, {self.every}")
        if self.every and not self.examples:
            raise PretrainError("heldout: every is set, but examples is 0: no example to evaluate on")


@dataclasses.dataclass
class PretrainConfig:
    config_error = PretrainError
    path_keys = ("data", "output", "model", "init_model", "task_modules")  # not a field: read from the file's folder
    data: str                          # the shard directory `data_gen make` wrote
    output: str
    schedule: Dict[str, Any]           # checked by `ernie.pretrain.schedule`
    model: Optional[str] = None        # a model preset; optional with init_model (the model's own config)
    init_model: Optional[str] = None   # continue from this model directory (`ernie.pretrain.init_model`)
    task_modules: List[str] = dataclasses.field(default_factory=list)  # a user's task modules
    # tasks of the schedule the shards may lack (IR relevance without a click log): `load_config`
    # leaves their stages out of a run on shards without them; any other task they lack is an error
    optional_tasks: List[str] = dataclasses.field(default_factory=list)
    seed: int = 1
    batch_tokens: int = DEFAULT_BATCH_TOKENS  # one rank's batch (at most batch size x longest example) ...
    global_batch_tokens: Optional[int] = None   # ... or the whole update's, over every rank (the paper's 393,216)
    max_tokens_per_device: Optional[int] = None  # what one device holds: a larger batch is accumulated
    length_pool: int = 1               # batches' worth of examples sorted by length together (ernie.pretrain.data)
    dropout: Optional[float] = None    # the encoder's dropout while pre-training (the saved model keeps the preset's)
    recompute: bool = False            # recompute each encoder layer in the backward pass: activation memory / layers
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    mode: str = "static"
    amp: str = "off"
    corrupt_shards: str = "error"      # or skip: examples whose bytes fail their checksum are skipped, counted
    step_timeout: float = 600.0        # data-parallel: seconds a step may take before the job counts as stuck
    max_skipped_steps: int = 100       # steps in a row skipped for a non-finite loss or gradient before the run stops
    # a model directory (OUTPUT/models/tokens-N/) at the step whose real tokens, over all ranks and
    # resumes, first reach each of these counts: a curve of what the tokens seen buy
    save_models_at_tokens: List[int] = dataclasses.field(default_factory=list)
    loss_scaling: LossScaling = dataclasses.field(default_factory=LossScaling)
    optimization: Optimization = dataclasses.field(default_factory=Optimization)
    heldout: Heldout = dataclasses.field(default_factory=Heldout)

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
        if any(n < 1 for n in self.save_models_at_tokens) or self.save_models_at_tokens != sorted(set(
                self.save_models_at_tokens)):
            raise PretrainError(f"save_models_at_tokens must be increasing positive counts, got {self.save_models_at_tokens}")
        if Path(self.output).exists() and not Path(self.output).is_dir():
            raise PretrainError(f"output: {self.output} is a file, where the run's directory is written")
        if not 0 <= self.seed <= MAX_SEED:
            raise PretrainError(f"seed must be a whole number from 0 to {MAX_SEED}, got {self.seed}")
        if self.max_skipped_steps < 0:
            raise PretrainError(f"max_skipped_steps must be at least 0, got {self.max_skipped_steps}")
        if self.step_timeout <= 0:
            raise PretrainError(f"step_timeout must be positive, got {self.step_timeout}")
        for name in ("batch_tokens", "length_pool", "log_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise PretrainError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.global_batch_tokens is not None and self.batch_tokens != DEFAULT_BATCH_TOKENS:
            raise PretrainError(f"batch_tokens ({self.batch_tokens}, one rank's) and global_batch_tokens "
                                f"({self.global_batch_tokens}, all ranks') are both set: set one")
        for name in ("global_batch_tokens", "max_tokens_per_device"):
            if getattr(self, name) is not None and getattr(self, name) < MIN_BATCH_TOKENS:
                raise PretrainError(f"{name} must be at least {MIN_BATCH_TOKENS}, got {getattr(self, name)}")

    def batch_plan(self, ranks: int) -> "BatchPlan":
        """How a step's batch is cut for `ranks` data-parallel ranks: one rank's batch is
        `batch_tokens`, or `global_batch_tokens` / ranks; where that exceeds
        `max_tokens_per_device`, it is accumulated over the fewest equal micro-batches that fit."""
        per_rank = self.batch_tokens if self.global_batch_tokens is None else self.global_batch_tokens // ranks
        if per_rank < MIN_BATCH_TOKENS:
            raise PretrainError(f"global_batch_tokens {self.global_batch_tokens} over {ranks} ranks leaves "
                                f"{per_rank} tokens a rank, fewer than {MIN_BATCH_TOKENS}")
        limit = self.max_tokens_per_device or per_rank
        accumulate = -(-per_rank // limit)
        return BatchPlan(ranks, accumulate, per_rank // accumulate)

    def training_settings(self) -> Dict[str, Any]:
        """Everything but where and how often the run writes: what a resumed run must share.
        `length_pool` at 1, the global batch keys unset, `recompute`, `optional_tasks` and `heldout` off are left out, so
        checkpoints written before they existed still resume; the held-out slice is a training setting (it is kept out of the
        data), how often it is evaluated is not."""
        return training_settings(to_dict(self))


def training_settings(config: Dict[str, Any]) -> Dict[str, Any]:
    """`PretrainConfig.training_settings` of a config as a dict (a checkpoint's config.yaml)."""
    settings = {k: v for k, v in config.items()
                if k not in NOT_TRAINING_KEYS and not (k == "length_pool" and v == 1)
                and not (k in ("global_batch_tokens", "max_tokens_per_device") and v is None)
                and not (k in ("recompute", "optional_tasks") and not v)}
    examples = (settings.pop("heldout", None) or {}).get("examples")
    if examples:
        settings["heldout"] = {"examples": examples}
    return settings


def load_config(path, options: Dict[str, Any] = None, overrides: Sequence[str] = ()) -> PretrainConfig:
    """The config of `path`, the command's own options (`--output`, `--mode`, `--amp`) and
    `key=value` overrides (`--set`) on top; its optional tasks that the shards lack left out of
    its schedule (`without_tasks`), and said so on stderr."""
    try:
        config = load(PretrainConfig, path, overrides, extra=options)
    except PretrainError:
        raise
    except ConfigError as err:
        raise PretrainError(str(err)) from None
    have = shard_tasks(config.data)
    lacking = [t for t in config.optional_tasks if have is not None and t not in have]
    if lacking:
        print(f"schedule: {', '.join(lacking)} left out (optional_tasks): the shards at {config.data} have no "
              "examples of it", file=sys.stderr)
        config.schedule = without_tasks(config.schedule, lacking)
    return config


def shard_tasks(data: str) -> Optional[List[str]]:
    """The tasks the shards at `data` have examples of (not IR relevance where data_gen had no
    click log); None where their manifest does not say (not made yet, or an old format the
    reader refuses by name)."""
    manifest_path = Path(data) / "manifest.json"
    if not manifest_path.is_file():
        return None
    try:
        manifest = read_manifest(manifest_path)
    except ValueError as err:  # (ShardError)
        raise PretrainError(str(err)) from None
    if "task_table" not in manifest:
        return None
    counts = manifest.get("examples_per_task", {})
    return [t for t, entry in manifest["task_table"].items() if entry["level"] != "sentence" or counts.get(t)]


def without_tasks(schedule: Dict[str, Any], tasks: Sequence[str]) -> Dict[str, Any]:
    """`schedule` (a config's `schedule:` mapping) without `tasks`: gone from their stages, a
    stage left empty gone, their iteration counts gone. A malformed one as it is, for
    `ernie.pretrain.schedule` to name what is wrong."""
    stages, iterations = schedule.get("stages"), schedule.get("iterations_per_task")
    if not isinstance(stages, list) or not all(isinstance(stage, list) for stage in stages):
        return schedule
    kept = [[t for t in stage if t not in tasks] for stage in stages]
    trimmed = {**schedule, "stages": [stage for stage in kept if stage]}
    if isinstance(iterations, dict):
        trimmed["iterations_per_task"] = {t: n for t, n in iterations.items() if t not in tasks}
    return trimmed
