"""Batches for pre-training, read from the shards `data_gen make` wrote.

A step of the schedule (`ernie.pretrain.schedule.Step`) names the task whose examples the batch
holds and the tasks whose loss is on. For a sentence-level task the batch holds that task's
examples; the token-level tasks riding on a text task's step are trained on the same examples
(one sentence-level loss with several token-level losses, as the paper combines them). For a
token-level task the batch holds plain segments, text in its natural order, and only that task's
loss is on. Every batch is fed with the step's task id in `task_ids`. Each task makes its own label feeds
(`DataTask.batch_labels`, each task built from the options the shards' manifest records);
knowledge masking masks here when the shards were made with `masking: online`, seeded by
(seed, step).

Each stream of examples (one per sentence task, plus the plain segments) is read in a fresh
permutation every epoch, seeded by (seed, stream, epoch); the read position is part of
`state()`, so a resumed run reads exactly what the uninterrupted one would have. Batches are
sized in tokens by one rule (`fits`): an example joins while batch size x longest example stays
within `batch_tokens`; the one that would not fit starts the next batch.

With `length_pool` P > 1 a stream is read P batches' worth of tokens at a time; the pool is
sorted by length, cut into batches, and the batches are served in a shuffled order (seeded by
seed, stream and pool number; the batches not served yet are part of `state()`). Examples of one
batch then have nearly the same length, so nearly every position is a real token: on People's
Daily segments (mean length 89 of at most 128) a pool of 32 batches fills 97% of each batch
against 71% read one batch at a time (fairseq and tensor2tensor batch by length the same way).

With `heldout` K > 0, K examples of every stream are evaluated (`heldout_batches(task)`, in fixed
batches with fixed masks, so every evaluation of a run scores the same examples alike), drawn by
(seed, stream): from the held-out shards where the shards were made with `heldout_documents`
(whole documents no training example holds text of), else from all the training shards, kept out
of training on every rank (their text may be trained on in other examples: `heldout_source`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from data_gen.data_task import BatchContext
from data_gen.examples import NO_TASK, task_bit
from data_gen.shards import (
    MANIFEST,
    Shard,
    ShardError,
    heldout_shards,
    load_recorded_modules,
    read_manifest,
    recorded_path,
)
from ernie.model.features import pad_batch
from ernie_common import tasks as registry
from ernie_common.cli import number_ranges
from ernie_common.tasks import PLAIN_STREAM


def fits(count: int, longest: int, length: int, batch_tokens: int) -> bool:
    """The one batching rule: whether an example of `length` tokens may join a batch of `count`
    examples whose longest has `longest`, the padded batch then holding at most `batch_tokens`
    slots. A batch's first example always joins (an example longer than the budget is a batch
    of its own), so a batch never holds more than max(budget, its one example)."""
    return count == 0 or (count + 1) * max(longest, length) <= batch_tokens


def cut(lengths: Sequence[int], batch_tokens: int) -> List[List[int]]:
    """Consecutive runs of `lengths` (their positions) as batches, each as long as `fits` allows."""
    batches: List[List[int]] = []
    current, longest = [], 0
    for position, length in enumerate(lengths):
        if not fits(len(current), longest, length, batch_tokens):
            batches.append(current)
            current, longest = [], 0
        current.append(position)
        longest = max(longest, length)
    if current:
        batches.append(current)
    return batches


class PretrainingData:
    def __init__(self, shard_dir, seed: int, batch_tokens: int, pad_id: int, mask_token_id: int,
                 first_normal_id: int, rank: int = 0, world_size: int = 1, skip_corrupt: bool = False,
                 length_pool: int = 1, heldout: int = 0):
        """`skip_corrupt`: an example whose bytes fail their checksum is skipped and counted
        (`corrupt_examples`) instead of stopping the run. `length_pool`: batches' worth of
        examples sorted by length together (1: batches read straight in the stream's order).
        `heldout`: examples of each stream kept out of training on every rank, and read for
        `heldout_batches` on rank 0, the writer, which alone evaluates them."""
        shard_dir = Path(shard_dir)
        self.manifest = read_manifest(shard_dir / MANIFEST)
        load_recorded_modules(self.manifest)
        files = [s["file"] for s in self.manifest["shards"]]
        if len(files) % world_size:
            raise ShardError(f"{shard_dir}: {len(files)} shards cannot be divided evenly among {world_size} ranks "
                             f"(each rank reads shards of its own: some would read more often or twice); make them "
                             f"again with a multiple of {world_size} (the data config's `shards`)")
        # each rank reads its own part of the shards; a held-out slice of examples is drawn over all of them
        mine = list(range(len(files)))[rank::world_size]
        # (held-out shards without an example: a share of documents too small for the corpus to hold one)
        held_files = [s["file"] for s in heldout_shards(self.manifest) if s["examples"]] if heldout else []
        # where the held-out examples come from, for the run to say: held-out documents, training examples or none
        self.heldout_source = "documents" if held_files else "examples" if heldout else None
        every_shard = [Shard(shard_dir / f) for f in files] if self.heldout_source == "examples" else None
        self.shards = [every_shard[g] if every_shard else Shard(shard_dir / files[g]) for g in mine]
        for g, shard in zip(mine, self.shards):
            recorded = self.manifest["shards"][g]["examples"]
            if len(shard) != recorded:  # a `make` stopped between writing shards and their manifest
                raise ShardError(f"{shard_dir / files[g]} holds {len(shard)} examples, its manifest.json "
                                 f"{recorded}: the shards are not the ones the manifest describes (was "
                                 f"`data_gen make` stopped?); run it again")
        self.world_size, self.n_shards = world_size, len(files)
        self.tasks = {t.name: t for t in registry.recorded_tasks(self.shards[0].tasks, self.manifest["config"],
                                                                str(shard_dir / MANIFEST))}
        self.seed, self.batch_tokens = seed, batch_tokens
        # the random draws of a step (online masking); ranks after the first draw their own
        self._step_seed = [seed] if rank == 0 else [seed, 1000 + rank]
        self.pad_id, self.mask_token_id, self.first_normal_id = pad_id, mask_token_id, first_normal_id
        self.vocab_size = self.manifest["vocab"]["size"]
        self.heldout: Dict[str, list] = {}  # stream -> its held-out examples
        if held_files and rank == 0:  # the writer evaluates them
            held = [Shard(shard_dir / f) for f in held_files]
            self.heldout = {name: [held[s][i] for s, i in rows[:, self._heldout_rows(name, rows.shape[1], heldout,
                                                                                   rows.shape[1])].T]
                            for name, rows in self._stream_members(held).items()}
        if self.heldout_source == "examples":
            everything = self._stream_members(every_shard)
            kept_out = {name: self._heldout_rows(name, rows.shape[1], heldout, rows.shape[1] // 2)
                        for name, rows in everything.items()}
            if rank == 0:  # the writer evaluates them; every rank leaves them out of training
                self.heldout = {name: [every_shard[s][i] for s, i in everything[name][:, rows].T]
                                for name, rows in kept_out.items()}
            local = np.full(len(files), -1)
            local[mine] = np.arange(len(mine))  # a shard's index among this rank's, -1 if not its own
            self.streams: Dict[str, np.ndarray] = {}
            for name, rows in everything.items():
                train = local[rows[0]] >= 0
                train[kept_out[name]] = False
                if train.any():
                    self.streams[name] = np.stack([local[rows[0, train]], rows[1, train]])
            trained = {name: np.delete(rows[0], kept_out[name]) for name, rows in everything.items()}
        else:
            self.streams = self._stream_members(self.shards)
            trained = {} if world_size == 1 else self._shards_of_streams(shard_dir)
        # the streams every rank trains on (by the shards' global index), which every rank checks
        # (`check_tasks`): from the shards that hold each stream, one pass over its rows, not one a rank
        ranks_of = {name: set((np.flatnonzero(np.bincount(shards)) % world_size).tolist())
                    for name, shards in trained.items()}
        self._rank_streams = [{name for name, ranks in ranks_of.items() if r in ranks} for r in range(world_size)]
        self.position = {name: [0, 0] for name in self.streams}  # stream -> [epoch, index]
        self._orders = {}  # stream -> (epoch, permutation)
        self.length_pool = length_pool
        # stream -> the pooled batches not served yet, each a list of [shard, index], and the pools read
        self.pending: Dict[str, List[List[List[int]]]] = {name: [] for name in self.streams}
        self.pools = {name: 0 for name in self.streams}
        self.skip_corrupt, self.corrupt_examples = skip_corrupt, 0

    def _shards_of_streams(self, shard_dir: Path) -> Dict[str, np.ndarray]:
        """stream -> the global indexes of the training shards that hold it: from the manifest's
        counts (`streams` of each shard), else (shards made before it recorded them) from every
        shard's task column, which every rank would read whole (34 bytes an example)."""
        entries = self.manifest["shards"]
        if all("streams" in e for e in entries):
            names = {str(t.task_id): t.name for t in self.tasks.values() if t.level == registry.SENTENCE}
            names[PLAIN_STREAM] = PLAIN_STREAM
            found: Dict[str, list] = {}
            for g, entry in enumerate(entries):
                for key, n in entry["streams"].items():
                    if n and key in names:
                        found.setdefault(names[key], []).append(g)
            return {name: np.asarray(shards) for name, shards in found.items()}
        members = self._stream_members([Shard(shard_dir / e["file"]) for e in entries])  # let go once read
        return {name: rows[0] for name, rows in members.items()}

    def _stream_members(self, shards) -> Dict[str, np.ndarray]:
        """stream -> [2, n] array of (index in `shards`, example index) rows, in shard order."""
        shard_of = np.concatenate([np.full(len(shard), s) for s, shard in enumerate(shards)])
        index_in = np.concatenate([np.arange(len(shard)) for shard in shards])
        codes = np.concatenate([shard.array("task") for shard in shards])
        has_tokens = np.concatenate([shard.array("token_tasks") for shard in shards]) > 0
        selections = {t.name: codes == t.task_id for t in self.tasks.values() if t.level == registry.SENTENCE}
        selections[PLAIN_STREAM] = (codes == NO_TASK) & has_tokens
        return {name: np.stack([shard_of[mask], index_in[mask]]) for name, mask in selections.items() if mask.any()}

    def _heldout_rows(self, stream: str, n: int, k: int, most: int) -> np.ndarray:
        """The rows of a stream of `n` examples held out: `k` of them, at most `most` (half a
        training stream), drawn by (seed, stream); 1 << 21 keeps the draw apart from the epochs'
        and pools'."""
        rng = np.random.default_rng([self.seed, self._stream_id(stream), 1 << 21])
        return np.sort(rng.permutation(n)[:min(k, most)])

    def describe_heldout(self, tasks: Sequence[str]) -> str:
        """A line for the run's start: each task's held-out examples and where they come from."""
        counts = {task: len(self.heldout.get(self.stream_for(task), [])) for task in tasks}
        where = ("the shards' held-out documents, whose text no training example holds"
                 if self.heldout_source == "documents" else
                 "the training shards, kept out of training (their text may be trained on in other examples; "
                 "data_gen's heldout_documents holds out whole documents)")
        line = f"held-out examples: {', '.join(f'{t} {n:,}' for t, n in counts.items())}, from {where}"
        missing = [t for t, n in counts.items() if not n]
        return line + (f"; none for {', '.join(missing)}: no held-out loss of it" if missing else "")

    def heldout_batches(self, task: str, task_order: Sequence[str], task_id: int) -> List[Dict[str, np.ndarray]]:
        """The held-out examples of `task`'s stream as feeds with only `task`'s loss on: sorted by
        length into batches of at most `batch_tokens`, masked (online masking) by draws fixed
        for the run, so each evaluation scores the same examples with the same labels."""
        examples = sorted(self.heldout.get(self.stream_for(task), []), key=len)
        batches = [[examples[k] for k in batch] for batch in cut([len(ex) for ex in examples], self.batch_tokens)]
        seed = [self.seed, registry.get(task).task_id, 1 << 22]
        return [self._feeds(batch, [*seed, k], [task], task_order, task_id) for k, batch in enumerate(batches)]

    @property
    def options(self) -> Dict[str, registry.TaskOptions]:
        """Each task's options as the shards' manifest records them: the objects this reader's
        tasks hold, which the run's heads are given too (`ErnieForPretraining(options=...)`)."""
        return {name: task.options for name, task in self.tasks.items()}

    def stream_for(self, task: str) -> str:
        return PLAIN_STREAM if registry.get(task).level == registry.TOKEN else task

    def check_tasks(self, tasks: Sequence[str]) -> None:
        """Raises ValueError where a task of `tasks` has no examples to train on: in the shards, or,
        in a job of several ranks, in some rank's own shards. Every rank checks every rank's, so
        all stop at once with the same message, before any waits for the others."""
        if self.world_size > 1:
            self._check_every_rank_has(tasks)
        missing = sorted({t for t in tasks if t not in self.tasks or self.stream_for(t) not in self.streams})
        if missing:
            plain = [t for t in missing if t in self.tasks and self.stream_for(t) == PLAIN_STREAM]
            lang = self.manifest["config"].get("lang")
            foreign = [t for t in missing if lang not in registry.get(t).languages]
            raise ValueError(f"the shards have no examples for task(s) {missing}; their manifest lists "
                             f"{self.manifest['tasks']}"
                             + ("; token-level tasks read plain segments, which shards made before they "
                                "existed lack: run `python -m data_gen make` again" if plain else "")
                             + "".join(f"; {t} is for {', '.join(registry.get(t).languages)} text, these "
                                       f"shards are {lang} (make left it out)" for t in foreign))

    def _check_every_rank_has(self, tasks: Sequence[str]) -> None:
        """A task whose examples some ranks' shards hold and others' do not: its examples were not
        spread over all shards, as `data_gen make --parts` leaves those of a task's own source
        (IR relevance's click log), which the first part alone writes, into its own shards."""
        for task in (t for t in tasks if t in self.tasks):
            lacking = [r for r, held in enumerate(self._rank_streams) if self.stream_for(task) not in held]
            if lacking and len(lacking) < self.world_size:
                raise ValueError(
                    f"{task}'s examples are in the shards of {self.world_size - len(lacking)} of the {self.world_size} "
                    f"ranks only (rank r reads shards r, r + {self.world_size}, ... of the {self.n_shards}); ranks "
                    f"{number_ranges(lacking)} would never train it. Made in parts (`data_gen make --parts`), a task's "
                    f"own source is written by part 0 alone, into its `shards` shards: make them again with "
                    f"`shards` a multiple of {self.world_size}")

    def _order(self, stream: str, epoch: int) -> np.ndarray:
        """The stream's reading order in an epoch (computed once per epoch, not per example)."""
        cached = self._orders.get(stream)
        if cached is None or cached[0] != epoch:
            order = np.random.default_rng([self.seed, self._stream_id(stream), epoch]).permutation(
                self.streams[stream].shape[1])
            cached = self._orders[stream] = (epoch, order)
        return cached[1]

    def _stream_id(self, stream: str) -> int:
        """What seeds a stream's reading order: 0 for the plain stream, a sentence task's own seed
        for its stream (`DataTask.stream_seed`)."""
        return 0 if stream == PLAIN_STREAM else self.tasks[stream].stream_seed()

    def _advance(self, stream: str) -> None:
        epoch, index = self.position[stream]
        index += 1
        if index == self.streams[stream].shape[1]:
            epoch, index = epoch + 1, 0
        self.position[stream] = [epoch, index]

    def _peek(self, stream: str):
        """The stream's next readable example and its [shard, index], not yet consumed (corrupt
        examples before it are skipped and counted, or raise)."""
        while True:
            epoch, index = self.position[stream]
            s, i = (int(v) for v in self.streams[stream][:, self._order(stream, epoch)[index]])
            try:
                return self.shards[s][i], [s, i]
            except ShardError:
                if not self.skip_corrupt:
                    raise
                self.corrupt_examples += 1
                self._advance(stream)

    def _next_example(self, stream: str):
        """The stream's next readable example and its [shard, index], consumed."""
        found = self._peek(stream)
        self._advance(stream)
        return found

    def _read_batch(self, stream: str) -> list:
        """The next batch in the stream's own order: an example that would take the batch past
        `batch_tokens` stays first in the stream for the next one."""
        examples, longest = [], 0
        while True:
            ex, _ = self._peek(stream)
            if not fits(len(examples), longest, len(ex), self.batch_tokens):
                return examples
            self._advance(stream)
            examples.append(ex)
            longest = max(longest, len(ex))

    def _fill_pending(self, stream: str) -> None:
        """Reads a pool of `length_pool` batches' worth of tokens and cuts it, sorted by length,
        into batches (each within `batch_tokens`), queued in a shuffled order. A pool ends with its
        epoch once it holds a batch's worth: read on into the next, a stream of fewer tokens than a
        pool would put an example in it two or more times, and the sort by length would put the
        copies side by side, in one batch (a stream of less than a batch still does)."""
        pool, tokens, epoch = [], 0, self.position[stream][0]
        while tokens < self.length_pool * self.batch_tokens:
            ex, ref = self._peek(stream)  # (corrupt examples skipped: perhaps into the next epoch)
            if self.position[stream][0] != epoch and tokens >= self.batch_tokens:  # the epoch ended
                break
            self._advance(stream)
            pool.append((len(ex), ref))
            tokens += len(ex)
        pool.sort(key=lambda item: item[0])  # stable: ties keep reading order
        batches = [[pool[k][1] for k in batch] for batch in cut([length for length, _ in pool], self.batch_tokens)]
        # 1 << 20 keeps the pools' draws apart from the epochs' permutations ([seed, stream, epoch])
        order = np.random.default_rng([self.seed, self._stream_id(stream), 1 << 20, self.pools[stream]]).permutation(
            len(batches))
        self.pending[stream] = [batches[k] for k in order]
        self.pools[stream] += 1

    def batch(self, step: int, task: str, on: Sequence[str], task_order: Sequence[str],
              task_id: int) -> Dict[str, np.ndarray]:
        """The batch of `task`'s examples on which the losses of `on` (the task, and token-level
        tasks riding on it) are on."""
        stream = self.stream_for(task)
        if self.length_pool > 1:
            if not self.pending[stream]:
                self._fill_pending(stream)
            examples = [self.shards[s][i] for s, i in self.pending[stream].pop(0)]
        else:
            examples = self._read_batch(stream)
        for rider in on[1:]:
            if not all(ex.token_tasks & task_bit(registry.get(rider).task_id) for ex in examples):
                raise ValueError(f"step {step + 1}: {task}'s examples do not carry {rider}'s labels, "
                                 f"which the schedule trains on them; were the shards made for {rider}?")
        return self._feeds(examples, [*self._step_seed, step, 7], list(on), task_order, task_id)

    def _feeds(self, examples, rng_seed, active, task_order, task_id) -> Dict[str, np.ndarray]:
        n, length = len(examples), max(len(ex) for ex in examples)
        batch = BatchContext(np.random.default_rng(rng_seed), [np.asarray(ex.src_ids, np.int64) for ex in examples],
                             self.vocab_size, self.mask_token_id, self.first_normal_id)
        feeds = {}
        for name in task_order:  # the order the tasks' labels were always drawn in
            task = self.tasks[name]
            feeds.update(_checked_labels(task, task.batch_labels(examples, length, batch))
                         if name in active else task.no_labels(n, length))
        feeds.update(pad_batch(list(zip(batch.src, (ex.sent_ids for ex in examples))), self.pad_id, task_id))
        feeds["task_weights"] = np.asarray([1.0 if t in active else 0.0 for t in task_order], np.float32)
        feeds["tokens"] = np.asarray(sum(len(ex) for ex in examples))
        return feeds

    def state(self) -> dict:
        return {"position": self.position, "corrupt_examples": self.corrupt_examples,
                "pending": self.pending, "pools": self.pools}

    def load_state(self, state: dict) -> None:
        self.position = {k: list(v) for k, v in state["position"].items()}
        self.corrupt_examples = state.get("corrupt_examples", 0)
        # checkpoints written before length pools existed have none pending
        self.pending = {name: [[list(ref) for ref in b] for b in state.get("pending", {}).get(name, [])]
                        for name in self.streams}
        self.pools = {name: state.get("pools", {}).get(name, 0) for name in self.streams}


def _checked_labels(task, labels) -> Dict[str, np.ndarray]:
    """A task's `batch_labels` as its `feed_specs` declare them, or a `TaskError` naming the task:
    a missing feed, a wrong number of dimensions or float labels for an integer feed stopped the
    run inside Paddle, with no task named, after the stages before the task's had trained."""
    where = f"task {task.name} ({task.module}): batch_labels"
    specs = task.feed_specs()
    if not isinstance(labels, dict) or set(labels) != set(specs):
        raise registry.TaskError(f"{where} must give the feeds of its feed_specs {sorted(specs)}, got "
                                 f"{sorted(labels) if isinstance(labels, dict) else type(labels).__name__}")
    checked = {}
    for name, (shape, dtype) in specs.items():
        value, want = np.asarray(labels[name]), np.dtype(dtype)
        if value.ndim != len(shape) or any(d not in (-1, v) for d, v in zip(shape, value.shape)):
            raise registry.TaskError(f"{where}: {name} has shape {list(value.shape)}, where its feed_specs "
                                     f"say {shape} (-1: any size)")
        if value.dtype.kind != want.kind and not (want.kind == "i" and value.dtype.kind in "ub"):
            raise registry.TaskError(f"{where}: {name} is {value.dtype}, where its feed_specs say {dtype}")
        checked[name] = value.astype(want, copy=False)
    return checked


def batch_fill(shards: Path, batch_tokens: int, batches: int, length_pool: int, task: Optional[str] = None) -> dict:
    """How full the reader's first `batches` batches of `task` are: real tokens a batch (`real`),
    their share of the padded positions (`fill`) and the seconds the reading took (`seconds`,
    masking and padding included). What `length_pool` buys on a corpus, measured. The default
    task is the shards' first token-level one: its batches are the plain segments."""
    import time

    from ernie_common.tokenization import first_normal_id, load_vocab
    manifest = read_manifest(Path(shards) / MANIFEST)
    vocab = load_vocab(recorded_path(manifest, manifest["vocab"]["path"]))
    data = PretrainingData(shards, 1, batch_tokens, vocab["[PAD]"], vocab["[MASK]"], first_normal_id(vocab),
                           length_pool=length_pool)
    if task is None:
        token_tasks = [name for name, t in data.tasks.items() if t.level == registry.TOKEN]
        if not token_tasks:
            raise ValueError(f"{shards}: the shards hold no token-level task, whose plain segments are read "
                             "by default: name a task")
        task = token_tasks[0]
    real = padded = 0
    start = time.perf_counter()
    for step in range(batches):
        feed = data.batch(step, task, [task], [task], 0)
        real += int(feed["tokens"])
        padded += feed["src_ids"].shape[0] * feed["src_ids"].shape[1]
    return {"real": real / batches, "fill": real / padded, "seconds": time.perf_counter() - start}
