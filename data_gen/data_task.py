"""The data side of a pre-training task: what data generation, the pre-training reader and
`inspect` call (the model side, head and loss, is `ernie.pretrain.task_head.TaskHead`; both are
registered together, `ernie_common.tasks.register`).

A task object is built per run from its options (`self.options`, the task's `TaskOptions`): by
`data_gen make` for each example generator (in every worker), by the pre-training reader and by
`inspect` from the options their manifest records. It holds what its generator's `setup` gives
it, never state shared with another run. Every hook has a default that does nothing, so a task
overrides the hooks its level and its source of examples need:

  what it stores: `fields`, the arrays of its examples (`ernie_common.tasks.Field`: per token,
                  per example or a list an example, each of its own dtype); by default an int8
                  array per token for each name in `label_fields`;
  generation, per chunk of documents:
    token level:    `token_labels` gives arrays over the chunk's tokens, one per per-token field
                    (-1 where there is no label);
    sentence level: `segment_example` turns a text segment into an example (reordering,
                    distance: the segment's task is drawn among these tasks, `text_task`),
                    `chunk_examples` mines examples from the chunk's documents (discourse),
                    `corpus_examples` from a source of its own after the corpus (IR's click log);
    any level:      `finish_block` sets the per-example and list fields of assembled examples;
  reading: `batch_labels` turns the examples of a batch into the task's label feeds, and
           `stream_seed` seeds the reading order of a sentence-level task's examples;
  inspect: `describe` decodes an example's labels for a person, and `restore_tokens` puts back
           the tokens a task replaced in the stored text (what `inspect` shows as the original
           and `make` counts in the unigram entropy).

What pre-training asks of a task besides its examples is asked here too, so that no module of the
framework names a task: the head gets the options of the reader's object (`ernie.pretrain.model`:
one options object per task and run), the memory estimate sizes the logits a head computes over
the vocabulary by `vocab_logits_share`, and the run's summary sets the final loss of a task that
predicts the corpus's tokens against the shards' unigram entropy (`compared_with_unigram_entropy`).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, Iterable, List, Optional, Protocol, Sequence, Tuple, Type, Union

import numpy as np

from ernie_common.tasks import TOKEN, Field, TaskOptions, TaskSpec

from .config import DataConfig
from .documents import Document
from .examples import Example, Plan, TokenTable
from .tokenized import ChunkTokenizer, Lexicon, TokenizedChunk

Block = Dict[str, np.ndarray]          # a block of assembled examples (`examples.assemble`)
FeedSpecs = Dict[str, Tuple[List[int], str]]  # feed name -> (shape, dtype)


class Generation(Protocol):
    """What a task sees of the example generator that owns it (`generate.ExampleGenerator`)."""
    config: DataConfig
    tokenizer: Any                     # `ernie_common.tokenization.make_tokenizer`'s
    chunk_tokenizer: ChunkTokenizer
    lexicon: Lexicon
    first_normal_id: int
    fields: Tuple[Field, ...]          # the fields of the examples it makes (`examples.shard_fields`)

    def plan(self, parts: List[Tuple[int, int]], task: Optional["DataTask"], label: int, stats: Counter,
             token_tasks: Optional[int] = None) -> Plan: ...


@dataclass
class ChunkContext:
    """What a chunk's tasks see. Sentences are indexed chunk-wide; `sentence_tokens[s]` is the
    first token of sentence s in `chunk` (its sentences split where one would overflow a
    segment), `whole` is the chunk before that split."""
    generator: Generation
    docs: Sequence[Document]
    whole: TokenizedChunk
    chunk: TokenizedChunk
    doc_bounds: np.ndarray          # first sentence of each document, then the end
    segments: List[List[Tuple[int, int]]]  # per document, [first, end) sentence ranges
    non_empty: List[int]            # documents with at least one sentence
    table: Optional[TokenTable]     # set once the token-level tasks have labelled the chunk
    doc_index: int = 0              # the document of the segment being made

    @property
    def sentence_tokens(self) -> np.ndarray:
        return self.chunk.sentence_tokens

    def token_range(self, first: int, end: int) -> Tuple[int, int]:
        """The token rows of sentences [first, end)."""
        return int(self.sentence_tokens[first]), int(self.sentence_tokens[end])

    def plan(self, parts: List[Tuple[int, int]], task: Optional["DataTask"], label: int, stats: Counter,
             token_tasks: Optional[int] = None) -> Plan:
        """An example of `parts` (token row ranges) for a sentence-level task (None: only the
        token-level tasks), carrying the configured token-level tasks unless told otherwise."""
        return self.generator.plan(parts, task, label, stats, token_tasks)


@dataclass
class BatchContext:
    """What a task's `batch_labels` may use: the step's random generator, the examples' input
    ids (one array a row, which a masking task replaces) and the vocabulary's figures."""
    rng: np.random.Generator
    src: List[np.ndarray]
    vocab_size: int
    mask_token_id: int
    first_normal_id: int


class DataTask:
    """The data side of one pre-training task; see the module's docstring. Subclasses set the
    class attributes; `register` sets `spec`, `module`, `options_type` and `head_type`."""
    name: ClassVar[str] = ""
    task_id: ClassVar[int] = -1
    level: ClassVar[str] = ""
    # What the task stores (`Field`s); none declared: an int8 array per token for each of
    # `label_fields`. `register` sets `label_fields` to the names of the per-token fields.
    fields: ClassVar[Tuple[Field, ...]] = ()
    label_fields: ClassVar[Tuple[str, ...]] = ()
    # A sentence-level task built from text segments competes with the others for each segment;
    # a token-level task's labels ride on every text example.
    text_task: ClassVar[bool] = False
    languages: ClassVar[Tuple[str, ...]] = ("en", "zh")
    description: ClassVar[str] = ""
    # Whether the run's summary sets the task's final loss against the unigram entropy of the
    # shards' tokens (`<name>_over_entropy`, `ernie.pretrain.log.summary`): the loss of a model
    # that knows only how often each token occurs, the baseline of a task that predicts tokens.
    compared_with_unigram_entropy: ClassVar[bool] = False
    spec: ClassVar[TaskSpec]
    module: ClassVar[str]
    options_type: ClassVar[Type[TaskOptions]]
    head_type: ClassVar[type]

    def __init__(self, options: TaskOptions):
        self.options = options

    # ---- data generation -------------------------------------------------------------------
    def prepare(self, config: DataConfig, read_corpus: Callable[[], Iterable[Document]]) -> Any:
        """State computed over the whole corpus before generation (knowledge masking's phrase
        statistics), JSON-serialisable; `read_corpus()` iterates the corpus's documents. Every
        generator (in each worker, in each part) gets it in `setup`."""
        return None

    def lexicon_words(self, state: Any) -> Sequence[str]:
        """Words the generator's lexicon must keep under fixed ids (the phrases' words)."""
        return ()

    def check_resources(self) -> None:
        """Reads the files its options name (`resource()` fields) as `setup` will, and raises a
        ValueError saying which is wrong and how: the data config calls it when it is loaded,
        so a bad file stops `make` before any work (the config names the task)."""

    def setup(self, generator: Generation, state: Any) -> None:
        """Called once by the generator that owns this object, with the state `prepare` returned:
        where a task loads the files its options name and keeps what generation needs."""

    def max_parts(self) -> int:
        """A text task's most parts per example ([SEP]s a segment must leave room for)."""
        return 2

    def token_labels(self, chunk: TokenizedChunk, context: ChunkContext, stats: Counter) -> Dict[str, np.ndarray]:
        """A token-level task's label arrays over the chunk's tokens, one per `label_fields`
        (converted to each field's dtype)."""
        return {}

    def segment_example(self, context: ChunkContext, segment: Tuple[int, int], rng: np.random.Generator,
                        stats: Counter) -> Optional[Plan]:
        """The example of the segment [first, end) of sentences, or None to drop it."""
        return None

    def chunk_examples(self, context: ChunkContext, stats: Counter) -> List[Plan]:
        return []

    def corpus_examples(self, generator: Generation, read_stats: Counter, rng: np.random.Generator,
                        stats: Counter) -> Union[None, str, Tuple[TokenTable, List[Plan]]]:
        """(TokenTable, plans) made after the corpus from the task's own source; None when the
        task has no such source; a sentence saying why when it has one but made nothing."""
        return None

    def finish_block(self, block: Block, generator: Generation, rng: np.random.Generator, stats: Counter) -> None:
        """Last changes to an assembled block of examples: where a task sets its per-example
        fields (`block[name]`, one value an example) and its list fields (`examples.set_list`),
        as knowledge masking's offline masking does."""

    def count_labels(self, labels: Dict[str, np.ndarray]) -> Dict[str, int]:
        """What the manifest records of a token-level task's labels over the examples that carry
        it (default: how often each label of its first field occurs)."""
        values = labels[self.label_fields[0]]
        counts = np.bincount(values[values >= 0].astype(np.int64))
        return {str(label): int(n) for label, n in enumerate(counts) if n}

    def num_classes(self, generator: Generation) -> Optional[int]:
        """Classes of a sentence-level task (from its options and resources), None for token tasks."""
        return None

    def manifest_entries(self, generator: Generation, stats: Counter) -> Dict[str, Any]:
        """What the manifest should record of this task besides its examples and labels per
        class (the discourse markers), from its generator and the generation's counts."""
        return {}

    # ---- reading ---------------------------------------------------------------------------
    @classmethod
    def feed_specs(cls) -> FeedSpecs:
        """The feeds `batch_labels` gives. A class method: the static program is built from them
        before any shard is read."""
        return {f"{cls.name}_label": ([-1, -1] if cls.level == TOKEN else [-1], "int64")}

    def batch_labels(self, examples: Sequence[Example], length: int, batch: BatchContext) -> Dict[str, np.ndarray]:
        """This task's label feeds for a batch in which it is on, its examples padded to `length`.
        Default: a token task's first label field as `<name>_label` [B, T]; a sentence task's
        labels as `<name>_label` [B]."""
        if self.level == TOKEN:
            out = np.full((len(examples), length), -1, np.int64)
            for row, ex in enumerate(examples):
                out[row, :len(ex)] = ex.labels[self.label_fields[0]]
            return {f"{self.name}_label": out}
        return {f"{self.name}_label": np.asarray([ex.label for ex in examples], np.int64)}

    def no_labels(self, n: int, length: int) -> Dict[str, np.ndarray]:
        """The feeds of a batch in which the task is off: no labels (-1)."""
        dims = {1: (n,), 2: (n, length)}  # a feed is [B] or [B, T]
        return {name: np.full(dims[len(shape)], -1, np.int64) for name, (shape, _) in self.feed_specs().items()}

    def stream_seed(self) -> int:
        """What seeds the reading order of a sentence-level task's stream of examples in the
        pre-training reader: its epochs' permutations, its length pools and its held-out draw
        (the plain segments' stream is 0). It decides which examples a run reads, and a resumed
        run's: it must not change once a task has trained. The default is the task's id - 2, the
        streams' numbering since sentence reordering (id 3) was the first sentence task (1)."""
        return self.task_id - 2

    # ---- pre-training ----------------------------------------------------------------------
    def vocab_logits_share(self) -> float:
        """The share of a batch's tokens at which the task's head computes logits over the whole
        vocabulary (a masked LM's masked positions, from its options): what sizes those logits
        in a device's memory estimate (`ernie.pretrain.memory`). 0 (the default) for a head of
        a few classes, whose outputs take next to nothing."""
        return 0.0

    # ---- inspect ---------------------------------------------------------------------------
    def describe(self, example: Example, tokens: List[str], original: List[str], manifest: dict) -> Dict[str, Any]:
        """The example's labels of this task, decoded for a person."""
        return {}

    @classmethod
    def restore_tokens(cls, ids: np.ndarray, lists: Dict[str, Tuple[np.ndarray, np.ndarray]]) -> None:
        """Puts back in `ids` (the stored token ids of some examples) the tokens this task
        replaced when the shards were made (offline masking), in place. `lists[name]` holds the
        values of list field `name` over those examples and, for each value, where its example
        starts in `ids`. A class method: `make` calls it on the shards' task classes."""
