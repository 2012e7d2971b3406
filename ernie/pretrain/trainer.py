"""Continual multi-task pre-training of ERNIE 2.0: a Paddle static program by default (dygraph on
request), data-parallel under `paddle.distributed.launch` (the program averages the ranks' gradients).

    python -m ernie.pretrain --config configs/pretrain/demo_en.yaml [--resume] [--print-schedule [--json]]

The config names the model preset, the shard directory that `data_gen make` wrote, the schedule
(`ernie.pretrain.schedule`), the optimisation and the output directory. Every step trains the task the
schedule names, with that task's stable id in the task embedding (`ernie_common.tasks`;
`task_modules:` names a user's task modules). The learning rate warms up per pre-training task:
each task runs its own noam (or linear warm-up/decay) schedule over its own step count, so a task
that a new stage introduces warms up from zero while the tasks already trained keep their
decayed rates.

Output: `log.jsonl` (a line every `log_every` steps: the mean loss and accuracy of each task over
the steps it trained in that window, the learning rate, tokens/s, stage), `checkpoints/step-N/`
(written atomically at an interval and at every stage end; `checkpoints/latest` names the
newest) and, at the end, `model/`, a model directory that `ernie.convert`, `ernie.encode` and
fine-tuning read, and `summary.json`: each task's final loss and accuracy, and the
knowledge-masking loss as a share of the unigram entropy of the shards' tokens, which the run
also prints. `dropout:` in the config sets the encoder's dropout for pre-training only; the saved
model keeps its preset's rates for fine-tuning. `--resume` continues from the newest
checkpoint and ends with the same parameters as an uninterrupted run; on a CPU it may change
`amp` between float32 and bfloat16 (`amp: auto` on machines of different kinds), and
`summary.json`'s `segments` say from which step each machine and precision trained. `--visualdl` also writes
the logged scalars for VisualDL, Paddle's dashboard (`visualdl --logdir OUTPUT/visualdl`).

Mixed precision (`amp:` in the config, or `--amp`): `fp16` (float16 O1 with fp32 master weights
and dynamic loss scaling, set by an optional `loss_scaling:` mapping; the scale is logged as
`loss_scale` and kept in checkpoints) needs a CUDA build and a GPU; `bf16` a GPU with bfloat16
(O1) or a CPU with AMX or AVX512_BF16 (the matrix products in bfloat16, `propeller.mixed_precision`);
`auto` is bf16 where the CPU has AMX, or is AMD's with AVX512_BF16, and off elsewhere (`ernie.kernels.cpu_kernels.auto_amp`; the
first line says which and why). They run in the static program, in one process or many; where
they cannot run, the run stops before it starts.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

import numpy as np
import yaml

from data_gen.examples import sentence_types
from data_gen.make import task_code
from data_gen.shards import ShardError, every_shard, read_manifest, recorded_path
from ernie.formats.checkpoint import casing_files, load_params, save_model_dir, save_params
from ernie.kernels.cpu_kernels import training_program_pass
from ernie.model.config import ErnieConfig
from ernie.pretrain.config import MODES, PretrainConfig, PretrainError, load_config, training_settings
from ernie.pretrain.log import read_log, summary, summary_line
from ernie.pretrain.schedule import Schedule, ScheduleError, schedule_from_config
from ernie_common import tasks as registry
from ernie_common.cli import output_dir, positive_int
from ernie_common.configfile import read, to_dict
from ernie_common.fileio import atomic_directory, atomic_write_text, sha256_file
from ernie_common.machine import cpu_flags, cpu_line
from ernie_common.tokenization import first_normal_id, is_sentencepiece, load_vocab
from propeller.mixed_precision import AMP_CHOICES, MixedPrecision, MixedPrecisionUnsupported, check_supported


def _sha(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _scalar(values: Dict[str, np.ndarray], name: str) -> float:
    """A fetched value of one element as a float (programs fetch shapes [] or [1])."""
    return float(np.asarray(values[name]).reshape(-1)[0])


class TrainingFailed(RuntimeError):
    """A run that started and then failed (a non-finite loss, a rank that stopped): exit code 1,
    where a config, data or checkpoint the run cannot use is a PretrainError and exit code 2."""


T = TypeVar("T")
# How a step fails when a collective does: gloo raises RuntimeError; Paddle's enforce maps
# InvalidArgument to ValueError and External (NCCL, CUDA) to OSError (paddle/fluid/pybind/exception.cc)
STEP_FAILURES = (RuntimeError, ValueError, OSError)
# ... and the errors of this rank's own input, which say what is wrong themselves (exit code 2)
OWN_ERRORS = (ShardError, PretrainError, ScheduleError, registry.TaskError)
# Paddle raises an allocation that fails (ResourceExhausted: a GPU's memory, or the host's) as MemoryError
OUT_OF_MEMORY = ("out of memory: a device holds fewer tokens with `max_tokens_per_device` (the batch "
                 "accumulated over more micro-batches, the same update) or `recompute: true`")


def run_watched(train: Callable[[], T], watch) -> T:
    """Runs `train()`, returning what it returns. A non-finite loss (every rank sees it at the same step: propeller.nonfinite)
    becomes TrainingFailed, as does running out of memory (with what fits the batch in less); so
    does a failed step of a distributed run (`watch`, a
    propeller.rank_watch.RankWatch), its message naming the ranks that stopped, unless it is an
    error of this rank's own data or config, raised as it is. The watch's thread is stopped
    whatever happens: left running, it aborts the interpreter's exit."""
    try:
        return train()
    except FloatingPointError as err:
        raise TrainingFailed(str(err)) from None
    except MemoryError as err:
        if watch is None:
            raise TrainingFailed(f"{OUT_OF_MEMORY} ({err})") from None
        watch.close()
        raise TrainingFailed(watch.failure_message(f"{watch.doing()} failed, {OUT_OF_MEMORY} ({err})")) from None
    except STEP_FAILURES as err:
        if watch is None or isinstance(err, OWN_ERRORS):
            raise
        watch.close()
        raise TrainingFailed(watch.failure_message(f"{watch.doing()} failed ({err})")) from None
    finally:
        if watch is not None:
            watch.close()


class Trainer:
    """One process or, under `paddle.distributed.launch`, data-parallel ranks (static program by
    default, dygraph on request): each rank reads its own part of the shards, gradients are
    averaged across ranks, rank 0 writes logs, checkpoints and the model."""

    def __init__(self, config: PretrainConfig, config_file=None, amp_auto: bool = False):
        from ernie.pretrain.data import PretrainingData

        self.config = config
        self.config_file = config_file  # the --config file, named in the run's config.yaml (the plot's title)
        self.amp_auto = amp_auto  # config.amp was decided here from `auto` (`_resolve_auto_amp`)
        self.world_size = int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))
        self.rank = int(os.environ.get("PADDLE_TRAINER_ID", "0"))
        self.distributed = self.world_size > 1
        if config.amp != "off" and config.mode == "dygraph":
            raise PretrainError(f"amp {config.amp} runs in the static program (mode: static, the default) only: "
                                "Paddle's dygraph auto-cast does nothing on a CPU")
        self.is_writer = self.rank == 0
        self.summary = None  # the writer's final losses, after `train`
        self.out = Path(config.output)
        try:
            registry.load_modules(config.task_modules)
        except registry.TaskError as err:
            raise PretrainError(str(err)) from None
        self.schedule: Schedule = schedule_from_config(config.schedule, "schedule")
        shard_dir = Path(config.data)
        manifest_path = shard_dir / "manifest.json"
        manifest = read_manifest(manifest_path)
        self.vocab_file = recorded_path(manifest, manifest["vocab"]["path"])
        if not self.vocab_file.is_file():
            raise PretrainError(f"{manifest_path} names the vocabulary {self.vocab_file}, which is found neither "
                                f"from {Path.cwd()} nor from {manifest.get('made_in', 'the directory make ran in')}")
        if sha256_file(self.vocab_file) != manifest["vocab"]["sha256"]:
            raise PretrainError(f"{self.vocab_file} changed since the shards in {shard_dir} were made")
        vocab = load_vocab(self.vocab_file)
        self.vocab_sha = manifest["vocab"]["sha256"]
        # the shards' casing (a SentencePiece vocabulary keeps its own): a model continued from must
        # share it, and the saved models record it for fine-tuning to read text the same way
        shards_lower_case = None if is_sentencepiece(self.vocab_file) else manifest["config"].get("do_lower_case")
        self.model_files = casing_files(shards_lower_case)
        # the shards' contents as their manifest records them: a resume reads on in the same ones
        self.shards_sha = _sha([s["sha256"] for s in every_shard(manifest)])
        self.shard_dir = shard_dir
        preset = ErnieConfig.from_file(config.model, vocab_size=len(vocab)) if config.model else None
        self.batch = config.batch_plan(self.world_size)
        if self.is_writer:
            print(f"batch: {self.batch.describe()}")
        self.data = PretrainingData(shard_dir, config.seed, self.batch.micro_tokens, vocab["[PAD]"],
                                    vocab["[MASK]"], first_normal_id(vocab),
                                    rank=self.rank, world_size=self.world_size,
                                    skip_corrupt=config.corrupt_shards == "skip", length_pool=config.length_pool,
                                    heldout=config.heldout.examples)
        self.data.check_tasks(self.schedule.tasks)
        if self.is_writer and config.heldout.examples:
            print(self.data.describe_heldout(self.schedule.tasks), flush=True)
        recorded = manifest.get("task_code", {})  # (shards of before 2026-12-07 lack it)
        changed = sorted(t for t, sha in task_code([t for t in self.schedule.tasks if t in recorded]).items()
                         if sha != recorded[t])
        if changed and self.is_writer:
            print(f"note: the code of task(s) {changed} changed since the shards in {shard_dir} were made "
                  f"({', '.join(sorted({self.data.tasks[t].module for t in changed}))}): their examples are the old "
                  f"code's; `python -m data_gen make` makes them again", flush=True)
        untrained = [t for t in manifest["tasks"] if t not in self.schedule.tasks]
        if untrained and self.is_writer:
            print(f"note: the shards hold task(s) {untrained}, which the schedule does not train", flush=True)
        tasks = registry.resolve(self.schedule.tasks)
        task_objects = [self.data.tasks[t.name] for t in tasks]  # the run's, built from the manifest's options
        types_needed = max(sentence_types(t) for t in task_objects)
        self.init = None  # the model this run continues from (`init_model:`)
        if config.init_model:
            from ernie.formats.checkpoint import CheckpointError
            from ernie.pretrain.init_model import learned_tasks, load_init_model
            try:
                self.init = load_init_model(config.init_model, self.vocab_file, [t.task_id for t in tasks], preset,
                                            sentence_types=types_needed, do_lower_case=shards_lower_case)
            except CheckpointError as err:
                raise PretrainError(str(err)) from None
            self.schedule = schedule_from_config(config.schedule, "schedule",
                                                 learned_tasks(tasks, self.init.params))
        self.own_steps = {t: self.schedule.own_steps(t) for t in self.schedule.tasks}
        self.model_config = self.init.config if self.init else preset
        self._check_model_fits_shards(manifest, manifest_path, task_objects)
        # The model trains with the config's `dropout` where it sets one; the saved model keeps the
        # preset's rates, which fine-tuning uses.
        dropout = config.dropout
        self.train_config = self.model_config if dropout is None else self.model_config.replace(
            hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
        self.num_classes = {t: manifest["classes"].get(t) for t in self.schedule.tasks}
        self._build()

    def _check_model_fits_shards(self, manifest: dict, manifest_path: Path, tasks) -> None:
        """What the model and the shards must agree on, checked before anything is built: a
        mismatch would otherwise stop the run at the first batch that shows it, minutes or hours
        in, with an index error deep in Paddle."""
        model = self.config.init_model or self.config.model
        c = self.model_config
        max_seq_len = manifest["config"]["max_seq_len"]
        if max_seq_len > c.max_position_embeddings:
            raise PretrainError(f"{manifest_path}: shards of max_seq_len {max_seq_len}, but the model ({model}) has "
                                f"{c.max_position_embeddings} positions: make the shards with max_seq_len <= "
                                f"{c.max_position_embeddings}, or use a model with more max_position_embeddings")
        for task in tasks:
            types = sentence_types(task)
            if types > c.sent_type_vocab_size:
                raise PretrainError(f"{manifest_path}: task {task.name}'s examples hold {types} sentence "
                                    f"types, but the model ({model}) has {c.sent_type_vocab_size} "
                                    f"(sent_type_vocab_size): set sent_type_vocab_size: {types} there")
            # LinearHead's, and its subclasses' (a property of the options, perhaps): asked of the run's head
            classes = getattr(task.head_type(task.spec, task.options), "token_classes", None)
            labels = [int(k) for k in manifest.get("token_labels", {}).get(task.name, {}) if k.isdigit()]
            if task.level == registry.TOKEN and isinstance(classes, int) and labels and max(labels) >= classes:
                raise PretrainError(f"{manifest_path}: task {task.name}'s shards hold token labels up to {max(labels)}, "
                                    f"but its head ({task.head_type.__name__}) predicts {classes} classes "
                                    f"(token_classes): register the task with a head whose token_classes is "
                                    f"{max(labels) + 1} (class MyHead(LinearHead): token_classes = {max(labels) + 1})")
            if c.use_task_id and task.task_id >= c.task_type_vocab_size:
                raise PretrainError(f"task {task.name} has id {task.task_id}, which the task embedding of the model "
                                    f"({model}, task_type_vocab_size {c.task_type_vocab_size}) lacks: set "
                                    f"task_type_vocab_size: {task.task_id + 1} there")

    def _build(self):
        from ernie.model.optimization import adamw
        from ernie.pretrain.model import ErnieForPretraining, feed_specs, pretraining_feeds
        from propeller.device import DeviceError, describe, process_place
        from propeller.dygraph_runner import DygraphRunner
        from propeller.static_runner import StaticRunner

        try:
            place = process_place()
        except DeviceError as err:
            raise PretrainError(f"rank {self.rank}: {err}") from None
        # every rank says where it runs: eight ranks on one GPU show in the logs at once
        print(f"rank {self.rank} of {self.world_size}: device {describe(place)}", flush=True)

        opt = self.config.optimization

        def optimizer(lr, parameters=None):
            return adamw(lr, opt.weight_decay, opt.beta1, opt.beta2, opt.epsilon, opt.clip_norm,
                         parameters=parameters)

        if self.config.mode == "dygraph":
            self.runner = DygraphRunner(lambda: ErnieForPretraining(self.train_config, self.num_classes,
                                                                    recompute=self.config.recompute,
                                                                    options=self.data.options),
                                        optimizer, seed=self.config.seed, distributed=self.distributed,
                                        accumulate=self.batch.accumulate)
            self.model = self.runner.model
        else:
            holder = {}

            def model_fn():
                model = ErnieForPretraining(self.train_config, self.num_classes, recompute=self.config.recompute,
                                            options=self.data.options)
                feeds = pretraining_feeds(model)
                fetches = model(feeds)
                holder["model"] = model
                return feeds, fetches, fetches["loss"]

            if self.distributed and self.amp_auto:
                self._agree_on_amp()
            amp = self.config.amp
            mixed_precision = None if amp == "off" else \
                MixedPrecision(amp, self.config.loss_scaling)
            self.runner = StaticRunner(model_fn, optimizer, seed=self.config.seed, place=place,
                                       mixed_precision=mixed_precision,
                                       distributed=self.distributed, accumulate=self.batch.accumulate,
                                       recompute=self.config.recompute, program_pass=training_program_pass())
            self.model = holder["model"]
        self.feed_names = list(feed_specs(self.model))
        self.task_order = self.model.active_task_order
        self.param_names = [p.name for p in self.model.parameters()]
        self._evaluator = None  # the forward-only program of the held-out evaluation, built on first use
        self._heldout_feeds = None  # task -> its held-out batches, made on first use

    # ---- held-out evaluation -------------------------------------------------------------------

    def _forward(self, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """The model's outputs on a batch with the current parameters, dropout off, no update."""
        if self.config.mode == "dygraph":
            import paddle
            self.model.eval()
            with paddle.no_grad():
                out = self.model({name: paddle.to_tensor(feed[name]) for name in self.feed_names})
            self.model.train()
            return {name: value.numpy() for name, value in out.items()}
        if self._evaluator is None:
            from ernie.pretrain.model import ErnieForPretraining, pretraining_feeds
            from propeller.static_runner import InferenceProgram

            def model_fn():
                model = ErnieForPretraining(self.train_config, self.num_classes, options=self.data.options)
                model.eval()
                feeds = pretraining_feeds(model)
                return feeds, model(feeds)
            self._evaluator = InferenceProgram(model_fn, scope=self.runner.scope, place=self.runner.place)
        return self._evaluator.run(feed)

    def evaluate_heldout(self) -> Dict[str, float]:
        """`heldout_loss/<task>` and `heldout_accuracy/<task>` of every task of the schedule on
        its held-out examples: the mean over all their labels (a batch's loss is the mean over its
        labels, so batches are weighted by their label counts)."""
        if self._heldout_feeds is None:
            self._heldout_feeds = {t: self.data.heldout_batches(t, self.task_order, registry.get(t).task_id)
                                   for t in self.schedule.tasks}
        result = {}
        for task, feeds in self._heldout_feeds.items():
            loss = count = correct = 0.0
            for feed in feeds:
                out = self._forward(feed)
                n = _scalar(out, f"{task}/count")
                loss += _scalar(out, f"{task}/loss") * n
                count += n
                correct += _scalar(out, f"{task}/correct")
            if count:
                result[f"heldout_loss/{task}"] = loss / count
                result[f"heldout_accuracy/{task}"] = correct / count
        return result

    # ---- learning rate ----------------------------------------------------------------------

    def learning_rate(self, task: str, task_step: int) -> float:
        """The rate of the step that is the `task_step`-th of the task's own steps."""
        from ernie.model.optimization import task_learning_rate
        return task_learning_rate(self.config.optimization, self.own_steps[task], task_step)

    # ---- checkpoints ------------------------------------------------------------------------

    def _fingerprint(self) -> dict:
        return {"config_sha256": _sha(self.config.training_settings()), "vocab_sha256": self.vocab_sha,
                "shards_sha256": self.shards_sha}

    def _reader_states(self) -> list:
        """Every rank's reading position (each reads its own shards), gathered on every rank."""
        if not self.distributed:
            return [self.data.state()]
        import paddle.distributed as dist
        states: list = []
        dist.all_gather_object(states, self.data.state())
        return states

    def save_checkpoint(self, step: int, task_steps: Counter) -> Optional[Path]:
        """Called on every rank (the ranks' reading positions are gathered); rank 0 writes."""
        readers = self._reader_states()
        if not self.is_writer:
            return None
        ckpt_dir = self.out / "checkpoints"
        name = f"step-{step:08d}"
        state = self.runner.state()
        with atomic_directory(ckpt_dir / name) as tmp:
            save_params(tmp / "params.safetensors", {n: state[n] for n in self.param_names})
            save_params(tmp / "optimizer.safetensors", {n: v for n, v in state.items() if n not in self.param_names})
            (tmp / "trainer_state.json").write_text(json.dumps({
                "step": step, "task_steps": dict(task_steps), "readers": readers, "tokens_seen": self.tokens_seen,
                "train_seconds": round(self._train_seconds(), 1), "segments": self.segments,
                "log_window": self._log_hook.state() if self._log_hook else None, **self._fingerprint()}, indent=2))
            (tmp / "ernie_config.json").write_text(self.model_config.to_json())
            (tmp / "config.yaml").write_text(yaml.safe_dump(to_dict(self.config), sort_keys=False))
        atomic_write_text(ckpt_dir / "latest", name + "\n")
        # the newest kept, by step up to this one; one past it is of a run killed before its
        # `latest` named it, whose steps this one trains again
        found = sorted(p for p in ckpt_dir.glob("step-*") if p.is_dir())
        older = [p for p in found if p.name < name]
        for old in older[:max(0, len(older) - (self.config.keep_checkpoints - 1))] + [p for p in found if p.name > name]:
            shutil.rmtree(old, ignore_errors=True)
        return ckpt_dir / name

    # what a run writes in its output directory, which an earlier run there leaves behind
    RUN_FILES = ("checkpoints", "model", "models", "summary.json", "log.jsonl", "visualdl", "loss_curves.png")

    def _clear_earlier_run(self, overwrite: bool) -> None:
        """Without `overwrite`, stops where the output holds another run's checkpoints or model
        (a new run beside them pruned its own checkpoints among the old one's, and left the old
        model and summary beside its own log); with it, removes them. Every rank asks, so all
        stop alike; the writer removes."""
        # a checkpoints/ of temporaries alone (a kill while the first one was written) is no run
        checkpoints = self.out / "checkpoints"
        found = (["checkpoints"] if (checkpoints / "latest").is_file()
                 or any(checkpoints.glob("step-*/trainer_state.json")) else []) + \
                [name for name in ("model", "models") if (self.out / name).exists()]
        if not found:
            return
        if not overwrite:
            resumable = "--resume continues it, " if "checkpoints" in found else ""
            raise PretrainError(f"{self.out} holds another run ({' and '.join(f'{n}/' for n in found)}): {resumable}"
                                f"--overwrite starts afresh and removes it (run_pretrain.sh: "
                                f"{'RESUME=1, ' if resumable else ''}OVERWRITE=1), or choose another output")
        if self.is_writer:
            for name in self.RUN_FILES:
                path = self.out / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            print(f"--overwrite: removed the earlier run in {self.out}")

    def load_checkpoint(self):
        latest = self.out / "checkpoints" / "latest"
        if not latest.is_file():
            raise PretrainError(f"--resume: no checkpoint in {self.out / 'checkpoints'}")
        ckpt = self.out / "checkpoints" / latest.read_text().strip()
        if not (ckpt / "trainer_state.json").is_file():
            raise PretrainError(f"--resume: {latest} names {ckpt.name}, which is not a complete checkpoint")
        try:
            state = json.loads((ckpt / "trainer_state.json").read_text())
            saved_config = yaml.safe_load((ckpt / "config.yaml").read_text())
            state["readers"], state["vocab_sha256"], state["config_sha256"], state["step"]  # what every resume reads
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as err:
            raise PretrainError(f"--resume: {ckpt} is not a checkpoint this trainer wrote ({type(err).__name__}: "
                                f"{err}); point {latest} at another, or start afresh (--overwrite)") from None
        mine = self._fingerprint()
        if state["vocab_sha256"] != mine["vocab_sha256"]:
            raise PretrainError(f"--resume: {ckpt} was trained with another vocabulary")
        # (checkpoints written before this was recorded are not checked)
        if state.get("shards_sha256", mine["shards_sha256"]) != mine["shards_sha256"]:
            raise PretrainError(f"--resume: the shards in {self.shard_dir} are not the ones {ckpt} was reading "
                                f"(`data_gen make` rewrote them since); its reading positions would skip or repeat "
                                f"examples of the new ones: resume with the shards it read, or start afresh")
        if state["config_sha256"] != mine["config_sha256"]:
            saved = training_settings(saved_config)
            mine = self.config.training_settings()
            changed = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k))
            if not _only_cpu_precision_changed(changed, saved, mine):
                raise PretrainError(f"--resume: the config differs from {ckpt / 'config.yaml'} in {changed}")
            print(f"resume: {ckpt.name} trained with amp {saved['amp']}, the run goes on with amp {mine['amp']} "
                  f"(on a CPU only the matrix products' precision changes; weights and optimizer are float32 in both)",
                  flush=True)
        readers = state["readers"]
        if len(readers) != self.world_size:
            raise PretrainError(f"--resume: {ckpt} was written by a run of {len(readers)} process(es); "
                                f"resume it with as many (this run has {self.world_size})")
        self.runner.load_state({**load_params(ckpt / "params.safetensors"),
                                **load_params(ckpt / "optimizer.safetensors")})
        self.data.load_state(readers[self.rank])
        self._seconds_before = state.get("train_seconds", 0.0)
        # checkpoints from before segments were kept: one segment, its machine not recorded
        self.segments = state.get("segments") or [{"from_step": 0, "amp": saved_config.get("amp", "off"), "machine": None}]
        self.tokens_seen = state.get("tokens_seen", 0)
        self._log_window = state.get("log_window")  # (checkpoints of before 2026-12-08 lack it)
        return state["step"], Counter(state["task_steps"])

    def _count_tokens(self, step: int, info: dict) -> None:
        """Adds a step's real tokens (over all ranks) to the run's; where they reach a count of
        `save_models_at_tokens` first, the writer saves the model there (OUTPUT/models/tokens-N/,
        with the step and the exact count in `tokens.json`)."""
        before, self.tokens_seen = self.tokens_seen, self.tokens_seen + info.get("tokens", 0)
        reached = [n for n in self.config.save_models_at_tokens if before < n <= self.tokens_seen]
        if reached and self.is_writer:
            params = self._params()
            for n in reached:
                record = json.dumps({"tokens_seen": self.tokens_seen, "step": step, "target": n}, indent=2)
                save_model_dir(self.out / "models" / f"tokens-{n}", self.model_config, params, vocab_file=self.vocab_file,
                               extra_files={**self.model_files, "tokens.json": record + "\n"})

    def _params(self) -> Dict[str, np.ndarray]:
        """The model's parameters in the runner's state (the optimizer's accumulators left out)."""
        state = self.runner.state()
        return {n: state[n] for n in self.param_names}

    def _train_seconds(self) -> float:
        """Seconds of training of this run so far, over all its resumed segments."""
        return self._seconds_before + time.perf_counter() - self._segment_started

    # ---- training -----------------------------------------------------------------------------

    def _start_from_init_model(self) -> None:
        shapes = {p.name: tuple(p.shape) for p in self.model.parameters()}
        values = self.init.values_for(shapes)
        self.runner.assign(values)
        if self.is_writer:
            fresh = [name for name in shapes if name not in values]
            print(f"init_model {self.init.path}: {len(values)} parameters loaded"
                  + (f"; grown: {', '.join(self.init.grown)}" if self.init.grown else "")
                  + (f", learned tasks replayed from stage 1: {', '.join(self.schedule.learned)}"
                     if self.schedule.learned else "")
                  + (f"; fresh: {', '.join(fresh)}" if fresh else "")
                  + (f"; not used: {', '.join(self.init.ignored)}" if self.init.ignored else ""))

    def _agree_on_amp(self) -> None:
        """`amp: auto` is decided by each rank from its own CPU: on a cluster of mixed machines the
        ranks would build programs of two precisions. They gather their decisions (the first
        collective, before the program's) and take one (`agreed_amp`)."""
        import paddle.distributed as dist
        if not dist.is_initialized():
            dist.init_parallel_env()
        decided: List[str] = []
        dist.all_gather_object(decided, self.config.amp)
        self.config.amp, why = agreed_amp(decided)
        if why and self.is_writer:
            print(f"amp auto: {why}", flush=True)

    def _sum_over_ranks(self, value: int) -> int:
        """`value` summed over the data-parallel ranks (each reads batches of its own lengths)."""
        if not self.distributed:
            return value
        import paddle
        import paddle.distributed as dist
        total = paddle.to_tensor([value], dtype="int64")
        dist.all_reduce(total)
        return int(total.numpy()[0])

    def _plan(self, steps: Sequence, end: int) -> dict:
        """What the ranks must share to train one run: each node reads its own copy of the config
        (its `--set`), the model's config, the vocabulary and the shards, and expands the schedule
        itself; each node's command line gives its own `--max-steps` (the run's `end`). Paths are
        left out (another node's checkout may lie elsewhere); what they name is compared by
        content. Ranks that differ would train at other rates, or call their collectives at other
        steps (a checkpoint's gathering against another's all-reduce: a hang)."""
        return {"config": {k: v for k, v in to_dict(self.config).items() if k not in PretrainConfig.path_keys},
                "model": _sha(self.model_config.to_json()), "vocabulary": self.vocab_sha, "shards": self.shards_sha,
                "steps": _sha([[s.task, *s.on] for s in steps]), "last step (--max-steps)": end}

    def _check_ranks_agree(self, start: Optional[int] = None, plan: Optional[dict] = None) -> None:
        """Data parallelism keeps the ranks' parameters identical; a divergence is an error. At
        the run's `start` (its first step's index), before anything is trained, with the ranks'
        `plan`s: nothing broadcasts rank 0's parameters or settings, each rank builds its own from
        its config and the seed (or reads the same init_model or checkpoint), so a rank that would
        start elsewhere, or train otherwise, stops the job then, not after its last step."""
        import paddle.distributed as dist
        digest = self.runner.parameters_digest()
        gathered: list = []
        dist.all_gather_object(gathered, (plan, digest))
        digests = [d for _, d in gathered]
        if start is not None:
            _check_plans_agree([p for p, _ in gathered], self.rank)
            why = (f"the ranks would start step {start + 1} from different parameters: {digests}; every rank "
                   f"builds them from the config's seed, its init_model or checkpoint, so a rank with another "
                   f"Paddle build or another copy of those files differs; nothing was trained")
            agreed = f"starts from the parameters of all {self.world_size} ranks"
        else:
            # every rank applies the same all-reduced gradients: a difference is an update computed
            # differently (a gradient-norm sum or fused AdamW vectorised for another instruction set,
            # another Paddle build), which no model may hide
            why = (f"parameters differ between ranks: {digests}; no model is written (the last checkpoint, "
                   f"{self.out / 'checkpoints'}, holds rank 0's state): ranks on CPUs of different instruction "
                   f"sets or with different Paddle builds update differently in the last bits")
            agreed = f"parameters identical on all {self.world_size} ranks"
        if len(set(digests)) != 1:
            raise PretrainError(f"rank {self.rank}: {why}")
        print(f"rank {self.rank}: {agreed} (sha256 {digest[:16]})")

    def _metrics(self, out, feed) -> dict:
        """The step's loss, and each active task's loss and accuracy, as (total, weight); over
        the micro-batches of an accumulated step, the loss as their mean, an accuracy over all
        their labels."""
        outs, feeds = (out, feed) if isinstance(out, list) else ([out], [feed])
        n = len(outs)
        metrics = {"loss": (sum(_scalar(o, "loss") for o in outs) / n, 1.0)}
        if "loss_scale" in outs[-1]:
            metrics["loss_scale"] = (_scalar(outs[-1], "loss_scale"), 1.0)
        for task, weight in zip(self.task_order, feeds[0]["task_weights"]):
            counts = [_scalar(o, f"{task}/count") for o in outs]
            if weight and sum(counts):
                labelled = [o for o, c in zip(outs, counts) if c]
                metrics[f"{task}/loss"] = (sum(_scalar(o, f"{task}/loss") for o in labelled) / len(labelled), 1.0)
                metrics[f"{task}/accuracy"] = (sum(_scalar(o, f"{task}/correct") for o in outs), sum(counts))
        return metrics

    def train(self, resume: bool = False, progress: bool = True, visualdl: bool = False,
              max_steps: Optional[int] = None, overwrite: bool = False) -> Optional[Path]:
        """Trains to the schedule's end and writes the model; with `max_steps`, stops after that
        step (a checkpoint is written there, so `resume` continues) and returns None. A run that
        does not resume refuses an output directory holding another run, unless `overwrite`
        (then that run's files go first)."""
        from propeller.learner import CheckpointHook, EvalHook, Learner, LogHook, ProgressHook, StepHook, VisualDLSink, append_jsonl

        steps = list(self.schedule.steps())
        end = len(steps) if max_steps is None else min(len(steps), max_steps)
        self._segment_started, self._seconds_before = time.perf_counter(), 0.0
        self.tokens_seen = 0  # real tokens over all ranks, over resumes (a checkpoint keeps the count)
        self.segments = []  # where and in which precision each part of the run trained, over resumes
        self._log_hook, self._log_window = None, None  # the log's window, which a checkpoint keeps
        if resume:
            start, task_steps = self.load_checkpoint()
        else:
            self._clear_earlier_run(overwrite)
            start, task_steps = 0, Counter()
            if self.init is not None:
                self._start_from_init_model()
        here = {"from_step": start, "amp": self.config.amp, "machine": _machine()}
        last = self.segments[-1] if self.segments else {}
        if (last.get("amp"), last.get("machine")) != (here["amp"], here["machine"]):
            self.segments.append(here)

        k = self.batch.accumulate

        def plan(index: int):
            if index == start and self.distributed:  # in the first watched step: a rank that stopped is named
                self._check_ranks_agree(start, self._plan(steps, end))
            step = steps[index]
            task_steps[step.task] += 1
            task_id = registry.get(step.task).task_id
            feeds = [self.data.batch(index * k + j, step.task, step.on, self.task_order, task_id) for j in range(k)]
            info = {"stage": step.stage + 1, "task": step.task,
                    "tokens": self._sum_over_ranks(sum(int(f["tokens"]) for f in feeds))}
            lr = self.learning_rate(step.task, task_steps[step.task])
            feeds = [{name: f[name] for name in self.feed_names} for f in feeds]
            return (feeds if k > 1 else feeds[0]), lr, info

        hooks = []
        stage_ends = self.schedule.stage_ends
        if self.is_writer:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.out / "config.yaml", (f"# config: {self.config_file}\n" if self.config_file else "")
                              + yaml.safe_dump(to_dict(self.config), sort_keys=False))
            try:
                sinks = [VisualDLSink(self.out / "visualdl")] if visualdl else []
            except ImportError as err:
                raise PretrainError(str(err)) from None
            # the log's and the held-out records' steps are the whole run's, wherever --max-steps stops it
            self._log_hook = LogHook(self.out / "log.jsonl", self.config.log_every, len(steps), fields=("stage", "lr"),
                                     sinks=sinks, window=self._log_window)
            hooks = [ProgressHook(end, enabled=progress), self._log_hook]
            if self.config.heldout.examples:  # before the checkpoint hook: a checkpoint's step has its record
                hooks.append(EvalHook(lambda step: self.evaluate_heldout(), self.config.heldout.every, len(steps),
                                      sinks=[append_jsonl(self.out / "log.jsonl"), *sinks], also_after=stage_ends,
                                      at_start=True, fields=("stage",)))
        hooks.append(StepHook(self._count_tokens))  # before the checkpoint: its step's tokens counted
        hooks.append(CheckpointHook(lambda step: self.save_checkpoint(step, task_steps),
                                    self.config.checkpoint_every, also_after=stage_ends + [end]))
        watch = None
        if self.distributed:  # a dead rank stops the others, which name it (propeller.rank_watch)
            from propeller.rank_watch import RankWatch
            watch = RankWatch(self.rank, self.world_size, step_timeout=self.config.step_timeout)
            hooks.insert(0, watch)  # beating before the others' before_train (rank 0 evaluates there)
        learner = Learner(self.runner, self._metrics, hooks, max_skipped=self.config.max_skipped_steps)

        def train_and_check() -> int:
            """The steps, then the ranks' last collectives, watched as the steps are (a rank
            that stops there would leave the others blocked in them); the corrupt examples skipped
            by every rank's shards, not the writer's alone."""
            learner.train(plan, end, start)
            if watch is not None:
                watch.begin_closing()
                self._check_ranks_agree()
            return self._sum_over_ranks(self.data.corrupt_examples)

        corrupt = run_watched(train_and_check, watch)
        if learner.skipped_steps and self.is_writer:
            print(f"skipped {learner.skipped_steps} step(s) for a non-finite loss or gradient (log.jsonl: "
                  f"skipped_steps)", file=sys.stderr)
        if end < len(steps):
            if self.is_writer:
                window = {name: total / weight for name, (total, weight) in self._log_hook.state()["sums"].items()
                          if weight and name.endswith("loss")}  # (log.jsonl's next record is the whole run's)
                print(f"stopped after step {end} of {len(steps)} (--max-steps)"
                      + (", the steps since the last log record: " + ", ".join(f"{k} {v:.4f}" for k, v in
                                                                              sorted(window.items())) if window else "")
                      + f"; --resume continues from {self.out / 'checkpoints'}")
            return None
        if not self.is_writer:
            return self.out / "model"
        model_dir = save_model_dir(self.out / "model", self.model_config, self._params(), vocab_file=self.vocab_file,
                                   extra_files=self.model_files)
        entropy = self.data.manifest.get("unigram_entropy", {}).get("nats")
        self.summary = summary(read_log(self.out), entropy)
        # how long, and where: with the threads each process had (another run beside it slows it)
        self.summary["train_seconds"] = round(self._train_seconds(), 1)
        self.summary["tokens_seen"] = self.tokens_seen
        self.summary["machine"] = _machine()
        self.summary["segments"] = self.segments
        self.summary["params_sha256"] = sha256_file(model_dir / "params.safetensors")  # what the run made, exactly
        if self.config.corrupt_shards == "skip":
            self.summary["corrupt_examples_skipped"] = corrupt
            print(f"skipped {corrupt} example(s) of corrupt shards", file=sys.stderr)
        atomic_write_text(self.out / "summary.json", json.dumps(self.summary, indent=2) + "\n")
        return model_dir


def _check_plans_agree(plans: Sequence[dict], rank: int) -> None:
    """Stops rank `rank` where the ranks' plans (`Trainer._plan`, by rank) differ, naming what
    differs and the ranks that differ from rank 0."""
    first = plans[0]
    differ = [k for k in first if any(p[k] != first[k] for p in plans)]
    if not differ:
        return
    flat = [_dotted(p["config"]) for p in plans]
    keys = sorted({k for f in flat for k in set(f) | set(flat[0]) if f.get(k) != flat[0].get(k)})
    what = [f"config keys {', '.join(keys)}" if k == "config" else k for k in differ]
    others = [str(i) for i, p in enumerate(plans) if p != first]
    raise PretrainError(f"rank {rank}: the ranks would train different runs: {'; '.join(what)} differ between rank 0 "
                        f"and rank(s) {', '.join(others)}; every rank reads its own copy of the config (and --set), the "
                        f"model config, the vocabulary and the shards: give them all the same; nothing was trained")


def _dotted(values: dict, prefix: str = "") -> dict:
    """A config's values by dotted key (`optimization.learning_rate`), as `--set` names them."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _is_whole_config(path) -> bool:
    """Whether `path` is a pre-training config (and not a schedule fragment, which
    `--print-schedule` also prints)."""
    return "data" in read(path)


def _machine() -> str:
    """Where a process trains: the CPU and the threads it had (another run beside it slows it)."""
    from ernie.kernels.cpu_runtime import math_threads
    return f"{cpu_line()}; {math_threads()} math thread(s)"


def _only_cpu_precision_changed(changed: list, saved: dict, mine: dict) -> bool:
    """Whether a checkpoint and its resuming config differ only in `amp`, between float32 and
    bfloat16 on a CPU: the same program state (no loss scale), so a run may move between machines
    of different kinds under `amp: auto`. On a GPU, or with float16's loss scaling, they do not."""
    from propeller.mixed_precision import has_gpu
    return changed == ["amp"] and {saved.get("amp"), mine.get("amp")} <= {"off", "bf16"} and not has_gpu()


def agreed_amp(decided: Sequence[str]) -> Tuple[str, Optional[str]]:
    """One precision for ranks that decided `amp: auto` each from its own CPU (`decided`, by rank):
    theirs where they agree, else float32 on every rank (bfloat16 must pay on all), with why."""
    if len(set(decided)) == 1:
        return decided[0], None
    with_bf16 = [r for r, amp in enumerate(decided) if amp != "off"]
    return "off", (f"off on every rank: ranks {with_bf16} chose bfloat16 for their CPUs and the others not; one "
                   f"precision for the program of every rank")


def _resolve_auto_amp(config: PretrainConfig) -> PretrainConfig:
    """`amp: auto` made bf16 or off for this machine, said in one line."""
    if config.amp != "auto":
        return config
    if config.mode == "dygraph":
        amp, why = "off", "the dygraph mode runs float32"
    else:
        from ernie.kernels.cpu_kernels import auto_amp
        amp, why = auto_amp()
    print(f"amp auto: {amp} ({why})", flush=True)
    config.amp = amp
    return config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ernie.pretrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="configs/pretrain/NAME.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh in an output directory that holds another run, removing that run")
    parser.add_argument("--max-steps", type=positive_int, metavar="N",
                        help="stop after step N (a checkpoint is written there; --resume continues): a time-boxed "
                             "run, or a smoke test of a cluster config on a few steps")
    parser.add_argument("--print-schedule", action="store_true", help="print the allocation and exit")
    parser.add_argument("--json", action="store_true", help="with --print-schedule: as JSON")
    parser.add_argument("--output", type=output_dir, help="output directory (overrides the config)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--visualdl", action="store_true", help="also log for VisualDL in OUTPUT/visualdl")
    parser.add_argument("--mode", choices=MODES, help="static program (default) or dygraph")
    parser.add_argument("--amp", choices=AMP_CHOICES, help="mixed precision (overrides the config; default off): "
                                                           "fp16 on GPUs, bf16 on GPUs and CPUs with AMX or "
                                                           "AVX512_BF16, auto: bf16 where it pays on the CPU")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (dotted for a nested one: optimization.learning_rate=1e-3)")
    args = parser.parse_args(argv)
    if args.resume and args.overwrite:
        parser.error("--resume continues the run in the output, --overwrite removes it: give one")
    try:
        if args.print_schedule:
            from ernie.pretrain.schedule import describe, with_learned
            from ernie.pretrain.schedule import main as print_fragment
            if not _is_whole_config(args.config):
                return print_fragment(["--config", args.config] + (["--json"] if args.json else []))
            # through the config's loader, as a run reads it: its paths, --set, optional tasks
            config = load_config(args.config, {"amp": args.amp}, args.set)
            registry.load_modules(config.task_modules)
            print(describe(with_learned(config.schedule, config.init_model, args.config), args.json))
            if not args.json:
                from ernie.pretrain.memory import scale_report
                print("\n".join(scale_report(config)))
            return 0
        config = load_config(args.config, {"output": args.output, "mode": args.mode, "amp": args.amp}, args.set)
        amp_auto = config.amp == "auto"
        config = _resolve_auto_amp(config)
        check_supported(config.amp, cpu_flags())
        trainer = Trainer(config, config_file=args.config, amp_auto=amp_auto)
        model_dir = trainer.train(resume=args.resume, progress=not args.quiet, visualdl=args.visualdl,
                                  max_steps=args.max_steps, overwrite=args.overwrite)
    except TrainingFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (PretrainError, ScheduleError, MixedPrecisionUnsupported, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    line = summary_line(trainer.summary) if trainer.summary else None
    print((f"{line}\n" if line else "") + (f"model: {model_dir}\n" if model_dir else "")
          + f"log: {Path(config.output) / 'log.jsonl'}")
    return 0
