"""Batches for pre-training, read from the shards `data_gen make` wrote.

A step of the schedule names one task. For a sentence-level task the batch holds that task's
examples, and the token-level tasks of the current stage that those examples carry are trained
with it (one sentence-level loss with several token-level losses, as the paper combines them).
For a token-level task the batch holds text examples and only that task's loss is on. Every
batch is fed with the step's task id in `task_ids`.

Each stream of examples (one per sentence task, plus all text examples) is read in a fresh
permutation every epoch, seeded by (seed, stream, epoch); the read position is part of
`state()`, so a resumed run reads exactly what the uninterrupted one would have. Knowledge
masking runs here when the shards were made with `masking: online`, seeded by (seed, step).
Batches are sized in tokens: examples are added while batch size x longest example stays within
`batch_tokens`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from data_gen.examples import token_task_bit
from data_gen.make import MANIFEST
from data_gen.shards import Shard
from data_gen.tasks.knowledge_masking import mask_example

from .features import pad_batch
from .task_names import (CAPITALIZATION, KNOWLEDGE_MASKING, SENTENCE_TASKS, TOKEN_DOCUMENT,
                         TOKEN_TASKS)

TEXT_STREAM = "text"
_LABEL_FIELD = {CAPITALIZATION: "case_label", TOKEN_DOCUMENT: "tokdoc_label"}


class PretrainingData:
    def __init__(self, shard_dir, seed: int, batch_tokens: int, pad_id: int, mask_token_id: int,
                 first_normal_id: int, rank: int = 0, world_size: int = 1):
        shard_dir = Path(shard_dir)
        self.manifest = json.loads((shard_dir / MANIFEST).read_text(encoding="utf-8"))
        files = [s["file"] for s in self.manifest["shards"]]
        # each rank reads its own part of the shards
        self.shards = [Shard(shard_dir / f) for f in files[rank::world_size] or files]
        self.seed, self.batch_tokens = seed, batch_tokens
        self.pad_id, self.mask_token_id, self.first_normal_id = pad_id, mask_token_id, first_normal_id
        self.vocab_size = self.manifest["vocab"]["size"]
        self.online_masking = self.manifest["config"]["masking"] == "online"
        # stream -> [2, n] array of (shard index, example index) rows
        shard_of = np.concatenate([np.full(len(shard), s) for s, shard in enumerate(self.shards)])
        index_in = np.concatenate([np.arange(len(shard)) for shard in self.shards])
        tasks = np.concatenate([np.asarray(shard.arrays["task"]) for shard in self.shards])
        has_tokens = np.concatenate([np.asarray(shard.arrays["token_tasks"]) for shard in self.shards]) > 0
        selections = {name: tasks == k for k, name in enumerate(SENTENCE_TASKS)}
        selections[TEXT_STREAM] = has_tokens
        self.streams: Dict[str, np.ndarray] = {name: np.stack([shard_of[mask], index_in[mask]])
                                               for name, mask in selections.items() if mask.any()}
        self.position = {name: [0, 0] for name in self.streams}  # stream -> [epoch, index]
        self._orders = {}  # stream -> (epoch, permutation)

    def stream_for(self, task: str) -> str:
        return TEXT_STREAM if task in TOKEN_TASKS else task

    def check_tasks(self, tasks: Sequence[str]) -> None:
        missing = sorted({t for t in tasks if self.stream_for(t) not in self.streams})
        if missing:
            raise ValueError(f"the shards have no examples for task(s) {missing}; "
                             f"their manifest lists {self.manifest['tasks']}")

    def _order(self, stream: str, epoch: int) -> np.ndarray:
        """The stream's reading order in an epoch (computed once per epoch, not per example)."""
        cached = self._orders.get(stream)
        if cached is None or cached[0] != epoch:
            stream_id = SENTENCE_TASKS.index(stream) + 1 if stream != TEXT_STREAM else 0
            order = np.random.default_rng([self.seed, stream_id, epoch]).permutation(self.streams[stream].shape[1])
            cached = self._orders[stream] = (epoch, order)
        return cached[1]

    def _next_example(self, stream: str):
        epoch, index = self.position[stream]
        members = self.streams[stream]
        s, i = members[:, self._order(stream, epoch)[index]]
        index += 1
        if index == members.shape[1]:
            epoch, index = epoch + 1, 0
        self.position[stream] = [epoch, index]
        return self.shards[int(s)][int(i)]

    def batch(self, step: int, task: str, stage_tasks: Sequence[str], task_order: Sequence[str],
              task_id: int) -> Dict[str, np.ndarray]:
        stream = self.stream_for(task)
        examples, longest = [], 0
        while True:
            ex = self._next_example(stream)
            longest = max(longest, len(ex))
            examples.append(ex)
            if (len(examples) + 1) * longest > self.batch_tokens:
                break
        if task in TOKEN_TASKS:
            active = [task]
        else:
            active = [task] + [t for t in stage_tasks if t in TOKEN_TASKS
                               and all(ex.token_tasks & token_task_bit(t) for ex in examples)]
        return self._feeds(examples, step, task, active, task_order, task_id)

    def _feeds(self, examples, step, task, active, task_order, task_id) -> Dict[str, np.ndarray]:
        n, length = len(examples), max(len(ex) for ex in examples)
        labels = {t: np.full((n, length), -1, np.int64) for t in _LABEL_FIELD}
        mask_pos, mask_label, inputs = [], [], []
        rng = np.random.default_rng([self.seed, step, 7])
        for row, ex in enumerate(examples):
            size = len(ex)
            src = np.asarray(ex.src_ids, np.int64)
            if KNOWLEDGE_MASKING in active:
                if self.online_masking:
                    data_config = self.manifest["config"]
                    src, pos, lab = mask_example(src, ex.seg_basic, ex.seg_knowledge, rng,
                                                 data_config["knowledge_unit_prob"], self.vocab_size,
                                                 self.mask_token_id, self.first_normal_id, data_config["mask_ratio"])
                else:
                    pos, lab = ex.mask_pos, ex.mask_label
                mask_pos.append(row * length + np.asarray(pos, np.int64))
                mask_label.append(np.asarray(lab, np.int64))
            inputs.append((src, ex.sent_ids))
            for t, field in _LABEL_FIELD.items():
                if t in active:
                    labels[t][row, :size] = getattr(ex, field)
        feeds = pad_batch(inputs, self.pad_id, task_id)
        # an empty gather is not allowed: without masked tokens, gather row 0 and ignore its label
        feeds["mask_pos"] = np.concatenate(mask_pos) if mask_pos else np.zeros(1, np.int64)
        feeds["mask_label"] = np.concatenate(mask_label) if mask_label else np.full(1, -1, np.int64)
        for t in _LABEL_FIELD:
            feeds[f"{t}_label"] = labels[t]
        for t in SENTENCE_TASKS:
            feeds[f"{t}_label"] = np.asarray([ex.label if t == task else -1 for ex in examples], np.int64)
        feeds["task_weights"] = np.asarray([1.0 if t in active else 0.0 for t in task_order], np.float32)
        feeds["tokens"] = np.asarray(sum(len(ex) for ex in examples))
        return feeds

    def state(self) -> dict:
        return {"position": self.position}

    def load_state(self, state: dict) -> None:
        self.position = {k: list(v) for k, v in state["position"].items()}
