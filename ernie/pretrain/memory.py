"""What one device holds while pre-training: an estimate to size `max_tokens_per_device` before a
cluster is rented, printed by `python -m ernie.pretrain --config CONFIG --print-schedule`.

- Parameters, gradients and Adam's two moments in float32, 16 bytes a parameter, plus 4 for the
  gradient accumulators when a step is accumulated, plus 2 for the float16/bfloat16 copies of
  the weights the casts of O1 mixed precision make.
- Activations kept for the backward pass, per encoder layer and micro-batch of T tokens in
  sequences of s: T·h·(34 + 5·a·s/h) bytes with 16-bit activations (Korthikanti et al. 2022,
  "Reducing Activation Recomputation in Large Transformer Models", for a post-LN BERT layer
  with dropout), twice that in float32; with recompute, each layer keeps only its 16-bit (or
  32-bit) input and one layer's activations are alive at a time.
- The masked-LM output: the logits over the vocabulary and their gradient, in float32, at the
  share of a batch's tokens where the heads of the run's tasks predict a token of the vocabulary
  (`DataTask.vocab_logits_share`, from the options the shards' manifest records, or the tasks'
  defaults where there are no shards yet).
Allocator slack, the framework's workspace and the collective buffers are not counted: leave a
fifth of the device free.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from data_gen.shards import read_manifest
from ernie.model.config import ErnieConfig
from ernie.pretrain.schedule import schedule_from_config
from ernie_common import tasks as registry

GB = 1 << 30


def parameter_count(config: ErnieConfig) -> int:
    """The encoder's parameters with the pooler and the masked-LM head (tied output weights);
    the other task heads are a few thousand."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    embeddings = (config.vocab_size + config.max_position_embeddings + config.sent_type_vocab_size
                  + (config.task_type_vocab_size if config.use_task_id else 0)) * h + 2 * h
    layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 4 * h
    pooler = h * h + h
    mlm_head = h * h + h + 2 * h + config.vocab_size
    return embeddings + layers * layer + pooler + mlm_head


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int
    weights_and_optimizer: float  # bytes
    activations: float
    mlm_logits: float

    @property
    def total(self) -> float:
        return self.weights_and_optimizer + self.activations + self.mlm_logits

    def describe(self) -> str:
        return (f"{self.total / GB:.1f} GB a device (estimate: {self.parameters / 1e6:.0f} M parameters, "
                f"weights and optimizer {self.weights_and_optimizer / GB:.1f} GB, activations "
                f"{self.activations / GB:.1f} GB, masked-LM logits {self.mlm_logits / GB:.1f} GB)")


def estimate(config: ErnieConfig, micro_tokens: int, seq_len: int, amp: str, accumulate: int,
             recompute: bool, vocab_logits_share: float) -> MemoryEstimate:
    """The memory one device needs for micro-batches of `micro_tokens` tokens (batch size x
    sequence length) of sequences up to `seq_len`; `amp` is off, fp16 or bf16;
    `vocab_logits_share`: the share of the tokens at which the heads compute logits over the
    vocabulary."""
    n = parameter_count(config)
    half = amp in ("fp16", "bf16")
    weights = n * (16 + (4 if accumulate > 1 else 0) + (2 if half else 0))
    h, a, layers = config.hidden_size, config.num_attention_heads, config.num_hidden_layers
    width = 1 if half else 2  # float32 activations take twice the 16-bit figure
    per_layer = micro_tokens * h * (34 + 5 * a * seq_len / h) * width
    if recompute:
        activations = layers * micro_tokens * h * 2 * width + per_layer
    else:
        activations = layers * per_layer
    masked = vocab_logits_share * micro_tokens
    logits = masked * config.vocab_size * 4 * 2
    return MemoryEstimate(n, float(weights), float(activations), float(logits))


ASSUMED = {"vocab_size": 30522, "max_seq_len": 512}  # where no shards say otherwise


def vocab_logits_share(config, manifest: Optional[dict], where: str) -> float:
    """The share of a batch's tokens at which the heads of a `PretrainConfig`'s tasks compute
    logits over the vocabulary, each task built with the options `manifest` records (None: with
    its defaults). Summed over the tasks: heads of tasks trained together compute theirs in the
    same step."""
    registry.load_modules(config.task_modules)
    tasks = registry.resolve(schedule_from_config(config.schedule, "schedule").tasks)
    objects = (registry.recorded_tasks(tasks, manifest["config"], where) if manifest is not None
               else [task(task.options_type()) for task in tasks])
    return sum(task.vocab_logits_share() for task in objects)


def scale_report(config, ranks=(1, 8, 64)) -> List[str]:
    """Lines for `--print-schedule`: a `PretrainConfig`'s batch and per-device memory at each of
    `ranks` devices, with the vocabulary, sequence length and tasks' options of its shards where
    they exist (else the values of `ASSUMED` and the tasks' default options, said so)."""
    manifest_path = Path(config.data) / "manifest.json"
    manifest = read_manifest(manifest_path) if manifest_path.is_file() else None
    values = ASSUMED if manifest is None else {"vocab_size": manifest["vocab"]["size"],
                                               "max_seq_len": manifest["config"]["max_seq_len"]}
    share = vocab_logits_share(config, manifest, str(manifest_path))
    source = f"the shards' ({manifest_path})" if manifest is not None else f"assumed (no shards at {config.data} yet)"
    model = ErnieConfig.from_file(config.model or Path(config.init_model), vocab_size=values["vocab_size"])
    lines = [f"vocabulary {values['vocab_size']:,}, {values['max_seq_len']} tokens, vocabulary logits at {share:g} "
             f"of the tokens: {source}; amp {config.amp}, recompute {'on' if config.recompute else 'off'}"]
    for n in ranks:
        plan = config.batch_plan(n)
        memory = estimate(model, plan.micro_tokens, values["max_seq_len"], config.amp, plan.accumulate,
                          config.recompute, share)
        lines.append(f"{n:>3} device(s): {plan.describe()}; {memory.describe()}")
    return lines
