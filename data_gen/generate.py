"""Turns chunks of documents into examples of every configured task.

A chunk is a fixed run of consecutive documents, and its random generator is seeded by
(seed, chunk index): the examples depend on the corpus and the config only, never on how many
worker processes share the chunks. Each document is cut into *segments*: runs of consecutive
sentences (across paragraph breaks) that fill `max_seq_len`. A segment becomes a plain example
(its text in natural order with the labels of every configured token-level task,
`DataTask.token_labels`: what steps of token-level tasks alone read) and one example of a
sentence-level task drawn from the configured text tasks (`segment_example`: reordering,
distance), which carries the token-level labels too. Other sentence-level tasks mine examples of their own from the chunk
(`chunk_examples`: discourse) or, after the corpus, from a source of their own
(`corpus_examples`: IR's click log). The generator names no task: it builds the configured ones from
their options (`build_tasks`).

With `heldout_documents` > 0 a chunk's held-out documents (`is_heldout`) are made into examples
apart from the others, as a chunk of their own with a generator of its own: no example of either
part holds text of the other (sentence distance draws its other document within its part), so
the held-out examples' text is never trained on.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ernie_common import tasks as registry
from ernie_common.tokenization import first_normal_id, make_tokenizer

from .config import DataConfig
from .data_task import Block, ChunkContext, DataTask
from .documents import Document, load_stopwords
from .examples import (
    NO_TASK,
    Plan,
    TokenTable,
    assemble,
    block_problem,
    shard_fields,
    task_bit,
    token_budget,
    tokens_in_no_example,
)
from .tokenized import ChunkTokenizer, Lexicon

HELDOUT_STREAM = 1  # the held-out part of a chunk draws from (seed, chunk index, 1)


def is_heldout(document: Document, share: float, seed: int) -> bool:
    """Whether a document is among the held-out `share`: a hash of its text keyed by the seed,
    so the choice depends on the text and the seed alone (not on chunks, workers or parts) and
    copies of one text are held out together."""
    if share <= 0:
        return False
    text = "\n".join(s.text for s in document.sentences).encode("utf-8")
    digest = hashlib.blake2b(text, digest_size=8, key=str(seed).encode()).digest()
    return int.from_bytes(digest, "little") < share * 2.0 ** 64


def build_tasks(config: DataConfig) -> List[DataTask]:
    """The config's tasks, in id order, each a new object built from its options: every
    generator has its own, which its `setup` fills."""
    return [task(config.task_options[task.name]) for task in registry.resolve(config.tasks)]


class ExampleGenerator:
    def __init__(self, config: DataConfig, states: dict):
        """`states`: what each task's `prepare` computed over the corpus (`make` runs it once)."""
        self.config = config
        self.tasks = build_tasks(config)
        self.tokenizer = make_tokenizer(config.vocab, config.do_lower_case)
        self.stopwords = load_stopwords(config.stopwords)
        pinned = [w for task in self.tasks for w in task.lexicon_words(states.get(task.name))]
        self.lexicon = Lexicon(self.stopwords, pinned=pinned)
        self.chunk_tokenizer = ChunkTokenizer(self.tokenizer, config.lang, self.lexicon)
        self.first_normal_id = first_normal_id(self.tokenizer.vocab)
        self.token_tasks = [t for t in self.tasks if t.level == registry.TOKEN]
        self.fields = shard_fields(self.tasks)
        self.field_dtypes = {f.name: np.dtype(f.dtype) for f in self.fields}
        self.task_by_id = {t.task_id: t for t in self.tasks}
        self.token_task_mask = 0
        for task in self.token_tasks:
            self.token_task_mask |= task_bit(task.task_id)
        self.text_tasks = [t for t in self.tasks if t.level == registry.SENTENCE and t.text_task]
        # a segment leaves room for [CLS] and a [SEP] after each of its parts
        parts = max([t.max_parts() for t in self.text_tasks] or [2])
        self.segment_budget = config.max_seq_len - (parts + 1)
        for task in self.tasks:
            task.setup(self, states.get(task.name))
        # each sentence-level task's classes, from its options and the files its setup read
        self.classes = {t.name: t.num_classes(self) for t in self.tasks if t.level == registry.SENTENCE}
        for name, classes in self.classes.items():  # the head's size: unknown, the run would fail at its build
            if not isinstance(classes, (int, np.integer)) or isinstance(classes, bool) or classes < 0:
                task = registry.get(name)
                raise registry.TaskError(f"task {name} ({task.module}): a sentence-level task's num_classes() must "
                                         f"return its number of classes (0 where it makes no examples); it "
                                         f"returned {classes!r}")

    # ---- a chunk's tokens -----------------------------------------------------------------

    def _segments(self, sentence_lengths: np.ndarray, doc_bounds: np.ndarray) -> List[List[Tuple[int, int]]]:
        """Per document, its segments as [first, end) sentence ranges: runs of consecutive
        sentences filling the segment budget."""
        lengths = sentence_lengths.tolist()
        out = []
        for first, end in zip(doc_bounds[:-1].tolist(), doc_bounds[1:].tolist()):
            segments, start, used = [], first, 0
            for s in range(first, end):
                if s > start and used + lengths[s] > self.segment_budget:
                    segments.append((start, s))
                    start, used = s, 0
                used += lengths[s]
            if end > start:
                segments.append((start, end))
            out.append(segments)
        return out

    # ---- examples -------------------------------------------------------------------------

    def plan(self, parts: List[Tuple[int, int]], task: Optional[DataTask], label: int, stats: Counter,
             token_tasks: Optional[int] = None) -> Plan:
        if task is not None:
            stats[f"examples/{task.name}"] += 1
            stats[f"labels/{task.name}/{label}"] += 1
        else:
            stats["examples/token_tasks_only"] += 1
        mask = self.token_task_mask if token_tasks is None else token_tasks
        return Plan(parts, task.task_id if task is not None else NO_TASK, label, mask)

    def _text_plans(self, context: ChunkContext, rng, stats) -> List[Plan]:
        """Per segment: a plain example (its text in natural order, for the steps of token-level
        tasks alone) and one of a text task drawn at random (for that task's steps, which also
        train the token-level tasks on it)."""
        plans = []
        for d, segments in enumerate(context.segments):
            context.doc_index = d
            for segment in segments:
                if self.token_tasks:
                    plans.append(self.plan([context.token_range(*segment)], None, -1, stats))
                if self.text_tasks:
                    task = self.text_tasks[int(rng.integers(len(self.text_tasks)))]
                    plan = task.segment_example(context, segment, rng, stats)
                    if plan is not None:
                        plans.append(plan)
        return plans

    def _checked_token_labels(self, task: DataTask, labels, n_tokens: int) -> Dict[str, np.ndarray]:
        """A token-level task's labels as its fields store them, or a `TaskError` naming the task and
        the field: an unknown field's labels were dropped, a missing one's examples trained at loss 0,
        float labels truncated and labels past the field's type wrapped, without a word."""
        where = f"task {task.name} ({task.module}): token_labels"
        if not isinstance(labels, dict) or set(labels) != set(task.label_fields):
            raise registry.TaskError(f"{where} must give a mapping of its label fields {list(task.label_fields)}, "
                                     f"got {sorted(labels) if isinstance(labels, dict) else type(labels).__name__}")
        checked = {}
        for name, values in labels.items():
            values = np.asarray(values)
            if values.shape != (n_tokens,):
                raise registry.TaskError(f"{where}: {name} has shape {values.shape}, the chunk has {n_tokens} tokens")
            dtype = self.field_dtypes[name]
            if dtype.kind not in "iu":  # a field of another kind stores what it is given
                checked[name] = values
                continue
            if values.dtype.kind not in "iub" and not (values.dtype.kind == "f" and np.all(values == np.round(values))):
                raise registry.TaskError(f"{where}: {name} must hold integer labels (-1: none), got {values.dtype}"
                                         + (" values that are not whole" if values.dtype.kind == "f" else ""))
            if values.size and (values.min() < -1 or values.max() > np.iinfo(dtype).max):
                raise registry.TaskError(f"{where}: {name} holds {values.min()}..{values.max()}, where its field "
                                         f"({dtype}) stores -1 (no label) to {np.iinfo(dtype).max}")
            checked[name] = values
        return checked

    def _check_plans(self, plans: List[Plan]) -> None:
        """Each sentence-level example's parts, at most its task's `max_parts()` (the sentence types
        pre-training checks the model has), and its label, a whole number within its task's
        classes; else a `TaskError` naming the task (a float label was truncated without a word,
        one past the classes or a sentence type past the model's failed inside Paddle at training)."""
        for plan in plans:
            if not isinstance(plan, Plan):
                raise registry.TaskError(f"an example must be a Plan (data_gen.examples), got {type(plan).__name__}")
            if plan.task == NO_TASK:
                continue
            task = self.task_by_id[plan.task]
            if len(plan.parts) > task.max_parts():  # more sentence types than the model was checked for
                raise registry.TaskError(f"task {task.name} ({task.module}): an example of {len(plan.parts)} parts, "
                                         f"where its max_parts() says at most {task.max_parts()}")
            if not isinstance(plan.label, (int, np.integer)) or isinstance(plan.label, bool):
                raise registry.TaskError(f"task {task.name} ({task.module}): an example's label must be a whole "
                                         f"number, its class, got {plan.label!r}")
            classes = self.classes[task.name]
            if not 0 <= plan.label < classes:
                raise registry.TaskError(f"task {task.name} ({task.module}): label {plan.label} is not one of its "
                                         f"{classes} classes (num_classes), 0 to {classes - 1}")

    def _assemble(self, table: TokenTable, plans: List[Plan], rng, stats) -> Block:
        self._check_plans(plans)
        # in random order: plans come in a pattern (a segment's plain example, then its text-task
        # example), which the round-robin over shards would otherwise sort into separate shards
        plans = [plans[i] for i in rng.permutation(len(plans))]
        self._count_cuts(plans, stats)
        block = assemble(table, plans, self.tokenizer.cls_id, self.tokenizer.sep_id, self.config.max_seq_len)
        for task in self.tasks:
            task.finish_block(block, self, rng, stats)
            problem = block_problem(block, self.fields)
            if problem:
                raise registry.TaskError(f"task {task.name} ({task.module}): after its finish_block, {problem}")
        return block

    def _count_cuts(self, plans: List[Plan], stats: Counter) -> None:
        """Examples of several parts (a sentence pair, a query and a title) longer than
        max_seq_len lose tokens from their longest part (`examples.fit_lengths`): counted per task
        in the manifest's skipped_or_repaired, examples and tokens."""
        names = {task.task_id: task.name for task in self.tasks}
        for plan in plans:
            over = sum(b - a for a, b in plan.parts) - token_budget(len(plan.parts), self.config.max_seq_len)
            if over > 0:
                name = names.get(plan.task, "token_tasks_only")
                stats[f"skipped/{name}_examples_cut_to_fit"] += 1
                stats[f"skipped/{name}_tokens_cut"] += over

    def split_heldout(self, docs: Sequence[Document]) -> Tuple[List[Document], List[Document]]:
        """A chunk's documents: (those trained on, those held out), each in corpus order."""
        share, seed = self.config.heldout_documents, self.config.seed
        held = [is_heldout(d, share, seed) for d in docs]
        return [d for d, h in zip(docs, held) if not h], [d for d, h in zip(docs, held) if h]

    def process_chunk(self, chunk_index: int, docs: Sequence[Document], stream: int = 0) -> Tuple[Block, Counter]:
        """The chunk's examples as one block (`examples.assemble`), and what was counted. `stream`
        1: the chunk's held-out documents, drawn apart from its others (`HELDOUT_STREAM`)."""
        stats: Counter = Counter()
        rng = np.random.default_rng([self.config.seed, chunk_index, *([stream] if stream else [])])
        sentences = [s for d in docs for s in d.sentences]
        stats["raw_bytes"] += sum(len(s.text.encode("utf-8")) for s in sentences)
        stats["sentences"] += len(sentences)
        whole = self.chunk_tokenizer(sentences)
        stats["unk_tokens"] += int((whole.ids == self.tokenizer.unk_id).sum())
        stats["tokens"] += len(whole.ids)
        chunk, source = whole.split_long(self.segment_budget, stats)
        doc_bounds = np.searchsorted(source, np.cumsum([0] + [len(d.sentences) for d in docs]))
        per_doc = np.diff(doc_bounds)
        stats["one_sentence_document"] += int((per_doc == 1).sum())
        segments = self._segments(chunk.sentence_lengths(), doc_bounds)
        context = ChunkContext(self, docs, whole, chunk, doc_bounds, segments, np.flatnonzero(per_doc).tolist(),
                               table=None)
        labels: Dict[str, np.ndarray] = {}
        for task in self.token_tasks:
            labels.update(self._checked_token_labels(task, task.token_labels(chunk, context, stats), len(chunk.ids)))
        context.table = TokenTable(chunk.ids, labels, self.fields)
        plans = self._text_plans(context, rng, stats)
        for task in self.tasks:
            plans += task.chunk_examples(context, stats)
        unread = tokens_in_no_example(len(chunk.ids), plans, self.config.max_seq_len)
        if unread:
            stats["skipped/tokens_in_no_example"] += unread
        stats["documents"] += len(docs)
        return self._assemble(context.table, plans, rng, stats), stats

    def corpus_examples(self, chunk_index: int, read_stats: Counter) -> List[Tuple[Block, Counter, str]]:
        """Blocks of the tasks that make examples from a source of their own, after the corpus;
        (None, stats, why) for a task that made none."""
        out = []
        for task in self.tasks:
            stats: Counter = Counter()
            rng = np.random.default_rng([self.config.seed, chunk_index])
            made = task.corpus_examples(self, read_stats, rng, stats)
            if isinstance(made, str):
                out.append((None, stats, f"{task.name}: {made}"))
            elif made is not None:
                table, plans = made
                out.append((self._assemble(table, plans, rng, stats), stats, ""))
        return out
