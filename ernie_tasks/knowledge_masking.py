"""Knowledge masking (ERNIE 1.0, kept in 2.0): mask whole units at three levels.

- basic: an English word (all its word pieces), a Chinese character;
- phrase: an English collocation (a bigram whose pointwise mutual information over the corpus is
  high, `Collocations`), a Chinese multi-character word of the segmentation (the corpus's own, or
  jieba's, whose dictionary is built from word frequencies);
- entity: a People's Daily person/place/organisation span (`nr`/`ns`/`nt`, consecutive `nr`
  merged, e.g. 江/nr 泽民/nr), an entry of a user-supplied entity list, or for English a run of
  two or more capitalised words ("United States", "Social Security Administration").
Units are stored as boundaries, like the original `seg_labels`: 0 starts a unit, 1 continues
one, -1 marks [CLS]/[SEP]. Two arrays per example: `seg_basic` (basic units only) and
`seg_knowledge` (entities, then phrases, then basic units), so masking runs offline here or on
the fly in the reader with `mask_units`; offline masking stores what it masked in two list
fields of the task's own, `mask_pos` (positions in the example) and `mask_label` (the original
token ids).
Masking chooses `mask_ratio` of the units (15% by default, as BERT and ERNIE 1.0); every token
of a chosen unit is replaced by [MASK] with probability 0.8, by a random token with 0.1, or kept
with 0.1 (decided per token, as BERT's whole-word masking does). The head is BERT's masked-LM
head under ERNIE's original parameter names, its output weights tied to the word embeddings, its
vocabulary projection computed on the masked positions only (`MaskedLMHead`). The settings are
the task's options (`KnowledgeMaskingOptions`, `task_options.knowledge_masking` of a data config).
"""
from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Set, Tuple

import numpy as np

from data_gen.data_task import DataTask
from data_gen.documents import SIDE_FILE, clean_lines, load_stopwords
from data_gen.examples import set_list
from data_gen.tokenized import MULTI_CHARACTER, STOPWORD, TokenizedChunk
from ernie.model import param_names as names
from ernie.pretrain.task_head import TaskHead
from ernie_common.tasks import LIST, TOKEN, Field, TaskOptions, register, resource

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
# People's Daily tags: consecutive person-name parts (nr) form one name; places (ns),
# organisations (nt) and other proper nouns (nz) are entities of one word.
PERSON_TAGS, ENTITY_TAGS = {"nr"}, {"ns", "nt", "nz"}


class Collocations:
    """English bigram phrases by pointwise mutual information, from one pass over the corpus.

    Words are counted as integers: unigrams in an array, bigrams as one sorted table of (code,
    count) arrays into which each batch's pairs are merged. Memory is bounded by configuration,
    not by the corpus: when the table holds more than `max_pairs` pairs, or the lexicon more than
    `max_words` words, the rarest are dropped, as word2vec's and gensim's phrase detectors prune
    their vocabularies: every entry counted fewer than `min_reduce` times goes, and `min_reduce`
    grows by one each time. A pair dropped and seen again starts counting from zero, so a count
    can fall short of the truth by at most the `min_reduce` reached (recorded as `pruned_below`);
    pairs frequent enough to be phrases are not affected unless the bound is far too small."""

    def __init__(self, min_count: int = 5, min_pmi: float = 3.0, max_phrases: int = 50000,
                 stopwords: Set[str] = frozenset(), max_pairs: int = 1_000_000, max_words: int = 200_000):
        self.min_count, self.min_pmi, self.max_phrases = min_count, min_pmi, max_phrases
        self.stopwords = stopwords
        self.max_pairs, self.max_words = max_pairs, max_words
        self._index: Dict[str, int] = {}
        self._unigrams = np.zeros(0, np.int64)
        self._codes, self._counts = np.zeros(0, np.int64), np.zeros(0, np.int64)
        self.min_reduce = 1        # entries counted fewer times than this were dropped
        self.pruned_below = 0      # the largest min_reduce a pruning used
        self.phrases: Set[Tuple[str, str]] = set()

    def count(self, sentences: Iterable[str]) -> None:
        """Counts the words of a batch of sentences and their pairs within a sentence."""
        index, ids, ends = self._index, [], []
        for text in sentences:
            ids += [index.setdefault(w, len(index)) for w in _WORD.findall(text.lower())]
            ends.append(len(ids))
        ids = np.asarray(ids, np.int64)
        self._unigrams = np.bincount(ids, minlength=len(index)) + np.pad(
            self._unigrams, (0, len(index) - len(self._unigrams)))
        within = np.ones(max(0, len(ids) - 1), bool)
        ends = np.asarray(ends, np.int64)
        within[ends[(ends > 0) & (ends < len(ids))] - 1] = False  # the pair across a sentence end
        codes, counts = np.unique(((ids[:-1] << 32) | ids[1:])[within], return_counts=True)
        self._codes, self._counts = _merge_counts(self._codes, self._counts, codes, counts)
        while len(self._codes) > self.max_pairs or len(self._index) > self.max_words:
            self._prune()

    @property
    def n_pairs(self) -> int:
        return len(self._codes)

    @property
    def n_words(self) -> int:
        return len(self._index)

    def _prune(self) -> None:
        """Drops the pairs and words counted fewer than `min_reduce` times, then raises it."""
        self.pruned_below = max(self.pruned_below, self.min_reduce)
        keep = self._counts >= self.min_reduce
        self._codes, self._counts = self._codes[keep], self._counts[keep]
        if len(self._index) > self.max_words:
            kept = self._unigrams >= self.min_reduce
            new_id = np.cumsum(kept) - 1
            a, b = self._codes >> 32, self._codes & 0xFFFFFFFF
            both = kept[a] & kept[b]
            self._codes = (new_id[a[both]] << 32) | new_id[b[both]]  # order is kept: ids only shrink
            self._counts = self._counts[both]
            words = [w for w, k in zip(self._index, kept.tolist()) if k]
            self._index = {w: i for i, w in enumerate(words)}
            self._unigrams = self._unigrams[kept]
        self.min_reduce += 1

    def finish(self) -> "Collocations":
        """The `max_phrases` best pairs by (PMI times log count, first word, second word), as a
        reverse sort of those tuples ranks them, kept in a heap of that size as the candidates
        stream by: memory is bounded by the setting, not by how many pairs of a long corpus
        pass `min_count`."""
        frequent = np.flatnonzero(self._counts >= self.min_count)
        codes, counts = self._codes[frequent], self._counts[frequent]
        words = list(self._index)
        stop = np.fromiter((w in self.stopwords for w in words), bool, len(words))
        content = ~stop[codes >> 32] & ~stop[codes & 0xFFFFFFFF]
        codes, counts = codes[content], counts[content]
        unigrams = self._unigrams.tolist()
        total = sum(unigrams) or 1

        def scored() -> Iterator[Tuple[float, str, str]]:
            step = 1 << 16  # pairs made Python numbers at a time
            for start in range(0, len(codes), step):
                for code, n in zip(codes[start:start + step].tolist(), counts[start:start + step].tolist()):
                    a, b = code >> 32, code & 0xFFFFFFFF
                    pmi = math.log(n * total / (unigrams[a] * unigrams[b]))
                    if pmi >= self.min_pmi:
                        yield pmi * math.log(n), words[a], words[b]

        self.phrases = {(a, b) for _, a, b in heapq.nlargest(self.max_phrases, scored())}
        self._index, self._unigrams = {}, np.zeros(0, np.int64)  # no longer needed
        self._codes, self._counts = np.zeros(0, np.int64), np.zeros(0, np.int64)
        return self


def _merge_counts(codes_a, counts_a, codes_b, counts_b):
    """The sum of two sorted (code, count) tables of distinct codes, sorted: b's codes that a
    holds are added in place, the others inserted where they sort. (Unlike a `np.unique` of
    both, which sorts copies of the two and an inverse index, the extra memory is one copy of
    the result.)"""
    at = np.searchsorted(codes_a, codes_b)
    held = at < len(codes_a)
    held[held] = codes_a[at[held]] == codes_b[held]
    counts_a[at[held]] += counts_b[held]
    new = ~held
    return np.insert(codes_a, at[new], codes_b[new]), np.insert(counts_a, at[new], counts_b[new])


class _Units:
    """Units chosen so far over a chunk's words: each new level keeps the candidate spans that
    overlap no unit already chosen (entities first, then phrases)."""

    def __init__(self, n_words: int):
        self.taken = np.zeros(n_words, bool)
        self.first = np.zeros(n_words, bool)
        self.counts: Counter = Counter()

    def add(self, starts: np.ndarray, ends: np.ndarray, name: str) -> None:
        """Spans [starts, ends) of words, not overlapping one another."""
        taken_before = np.concatenate([[0], np.cumsum(self.taken)])
        free = taken_before[ends] == taken_before[starts]
        starts, ends = starts[free], ends[free]
        cover = np.zeros(len(self.taken) + 1, np.int64)
        np.add.at(cover, starts, 1)
        np.add.at(cover, ends, -1)
        self.taken |= np.cumsum(cover[:-1]) > 0
        self.first[starts] = True
        self.counts[name] += len(starts)


def _runs(inside: np.ndarray, sentence_first: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """[start, end) of the maximal runs of `inside` words, cut at sentence starts."""
    before = np.concatenate([[False], inside[:-1]]) & ~sentence_first
    after = np.concatenate([inside[1:] & ~sentence_first[1:], [False]])
    return np.flatnonzero(inside & ~before), np.flatnonzero(inside & ~after) + 1


def _entity_list_spans(chunk: TokenizedChunk, entities: Set[Tuple[str, ...]], max_len: int, lang: str):
    """Longest matches of the entity list in each sentence: word sequences (English) or their
    concatenation (Chinese)."""
    starts, ends = [], []
    words = [chunk.lexicon.words[i] for i in chunk.lexeme.tolist()]
    bounds = np.append(np.flatnonzero(chunk.first_word_of_sentence()), len(words)).tolist()
    for a, b in zip(bounds, bounds[1:]):
        if chunk.word_sentence[a] < 0:
            continue
        i = a
        while i < b:
            for n in range(min(max_len, b - i), 0, -1):
                key = tuple(words[i:i + n]) if lang == "en" else ("".join(words[i:i + n]),)
                if key in entities:
                    starts.append(i)
                    ends.append(i + n)
                    i += n
                    break
            else:
                i += 1
    return np.asarray(starts, np.int64), np.asarray(ends, np.int64)


def knowledge_segments(chunk: TokenizedChunk, lang: str, phrase_pairs: np.ndarray,
                       entities: Set[Tuple[str, ...]], seg_basic: np.ndarray,
                       max_entity_words: int = 6) -> Tuple[np.ndarray, Counter]:
    """`seg_knowledge` over the chunk's tokens (entities, then phrases, then basic units) and
    the number of phrase and entity units.

    `phrase_pairs`: [P, 2] lexicon ids of the phrase bigrams. Entities: the entity list, then
    for English runs of two or more capitalised words, which do not start with a sentence-initial
    stop word ("And Mitch" is not an entity), for Chinese the tagged names. Phrases: for
    English the collocation bigrams, taken greedily left to right; for Chinese every word of more
    than one character. No unit crosses a sentence."""
    n = len(chunk.lexeme)
    first = chunk.first_word_of_sentence()
    kept = chunk.word_sentence >= 0
    units = _Units(n)
    if entities:
        units.add(*_entity_list_spans(chunk, entities, max_entity_words, lang), "entity_units")
    flags = chunk.lexicon.flags[chunk.lexeme]
    if lang == "en":
        capital = (chunk.case == 1) & kept & ~(first & ((flags & STOPWORD) > 0))
        starts, ends = _runs(capital, first)
        long_enough = ends - starts >= 2
        units.add(starts[long_enough], ends[long_enough], "entity_units")
        if len(phrase_pairs) and n > 1:
            size = len(chunk.lexicon.words)
            codes = chunk.lexeme[:-1] * size + chunk.lexeme[1:]
            free = ~units.taken
            candidate = (np.isin(codes, phrase_pairs[:, 0] * size + phrase_pairs[:, 1]) & ~first[1:]
                         & kept[1:] & free[:-1] & free[1:])
            # consecutive candidates overlap: greedy left to right takes every other one
            starts, ends = _runs(candidate, np.zeros(n - 1, bool))
            at = np.flatnonzero(candidate)
            chosen = at[(at - np.repeat(starts, ends - starts)) % 2 == 0]
            units.add(chosen, chosen + 2, "phrase_units")
    else:
        starts, ends = _runs(chunk.tagged(PERSON_TAGS) & kept, first)
        single = np.flatnonzero(chunk.tagged(ENTITY_TAGS) & kept)
        units.add(np.concatenate([starts, single]), np.concatenate([ends, single + 1]), "entity_units")
        multi = np.flatnonzero(((flags & MULTI_CHARACTER) > 0) & kept & ~units.taken)
        units.add(multi, multi + 1, "phrase_units")
    in_unit = units.taken[chunk.word]
    seg_knowledge = seg_basic.copy()
    seg_knowledge[in_unit] = 1
    seg_knowledge[in_unit & units.first[chunk.word] & chunk.word_start] = 0
    return seg_knowledge, units.counts


def unit_starts(seg: np.ndarray) -> np.ndarray:
    return np.flatnonzero(seg == 0)


def mask_units(ids: np.ndarray, seg: np.ndarray, rng: np.random.Generator, vocab_size: int,
               mask_id: int, first_normal_id: int, ratio: float = 0.15):
    """Masks 15% of the units of `seg`. Returns (masked ids, positions, original ids)."""
    starts = unit_starts(seg)
    if starts.size == 0:
        return ids.copy(), np.zeros(0, np.int32), np.zeros(0, np.int32)
    n_chosen = max(1, int(round(ratio * starts.size)))
    chosen = np.sort(rng.choice(starts.size, n_chosen, replace=False))
    # a unit runs from its start to the next position that is not a continuation (1)
    positions = []
    for u in chosen:
        p = starts[u]
        positions.append(p)
        p += 1
        while p < len(seg) and seg[p] == 1:
            positions.append(p)
            p += 1
    positions = np.asarray(positions, dtype=np.int32)
    labels = ids[positions].astype(np.int32)
    masked = ids.copy()
    roll = rng.random(positions.size)
    masked[positions[roll < 0.8]] = mask_id
    random_pos = positions[(roll >= 0.8) & (roll < 0.9)]
    masked[random_pos] = rng.integers(first_normal_id, vocab_size, random_pos.size)
    return masked, positions, labels


def mask_example(ids: np.ndarray, seg_basic: np.ndarray, seg_knowledge: np.ndarray,
                 rng: np.random.Generator, knowledge_prob: float, vocab_size: int, mask_id: int,
                 first_normal_id: int, ratio: float = 0.15):
    """Masks one example by knowledge units (probability `knowledge_prob`) or by basic units;
    the same rule offline (`data_gen make`) and online (the pre-training reader)."""
    seg = seg_knowledge if rng.random() < knowledge_prob else seg_basic
    return mask_units(ids, seg, rng, vocab_size, mask_id, first_normal_id, ratio)


def load_entity_list(path: Optional[str], lang: str) -> Set[Tuple[str, ...]]:
    """One entity a line; English entities are matched as word sequences, Chinese as words."""
    if not path:
        return set()
    entities = set()
    for _, line in clean_lines(Path(path), Counter(), SIDE_FILE):  # a line not UTF-8: one line naming it
        line = line.strip().lower()
        if line:
            entities.add(tuple(line.split()) if lang == "en" else (line,))
    return entities


def knowledge_units(tokens: List[str], seg: np.ndarray) -> List[str]:
    """Multi-token units of a boundary array (0 starts a unit, 1 continues it), as text."""
    units, current = [], []
    for tok, s in zip(tokens, seg):
        if s == 0 or s == -1:
            if len(current) > 1:
                units.append(" ".join(current))
            current = [tok] if s == 0 else []
        else:
            current.append(tok)
    if len(current) > 1:
        units.append(" ".join(current))
    return units


@dataclass
class KnowledgeMaskingOptions(TaskOptions):
    masking: str = "online"            # online: the reader masks; offline: `data_gen make` masks, stored
    knowledge_unit_prob: float = 0.5   # share of examples masked by knowledge units (else basic units)
    mask_ratio: float = 0.15           # share of units masked
    entities: Optional[str] = resource()      # an entity list, one entity a line
    collocation_min_count: int = 5
    collocation_min_pmi: float = 3.0
    collocation_max_pairs: int = 1_000_000   # phrase mining's memory bound (16 bytes a pair) ...
    collocation_max_words: int = 200_000     # ... and its words' (`Collocations`)

    def __post_init__(self):
        if self.masking not in ("online", "offline"):
            raise ValueError(f"masking must be online or offline, got {self.masking!r}")
        if not 0 < self.mask_ratio <= 1 or not 0 <= self.knowledge_unit_prob <= 1:
            raise ValueError("mask_ratio must be in (0, 1] and knowledge_unit_prob in [0, 1]")


class MaskedLMHead(TaskHead):
    """BERT's masked-LM head under ERNIE's original names: dense + the model's activation + layer
    norm on the masked rows, then the vocabulary projection with the word embeddings' weights and a
    bias of its own; the cross entropy of the masked tokens."""

    def parameter_names(self):
        return names.MASKED_LM_HEAD

    def build(self, config, num_classes):
        """The head's three parts in one layer (`logits` is its forward)."""
        import paddle
        from paddle import nn

        from ernie.model.modeling import LayerNorm, named_linear
        h, std = config.hidden_size, config.initializer_range
        layer = nn.Layer()
        layer.hidden_act = config.hidden_act  # the transform's activation is the encoder's, as BERT's and the original's
        with paddle.utils.unique_name.guard():
            layer.trans_fc = named_linear(names.fc_weight(names.MASK_LM_TRANS_FC),
                                          names.fc_bias(names.MASK_LM_TRANS_FC), h, h, std)
            layer.trans_layer_norm = LayerNorm(
                h, epsilon=config.layer_norm_eps,
                weight_attr=paddle.ParamAttr(name=names.ln_scale(names.MASK_LM_TRANS_LAYER_NORM),
                                             initializer=nn.initializer.Constant(1.0)),
                bias_attr=paddle.ParamAttr(name=names.ln_bias(names.MASK_LM_TRANS_LAYER_NORM),
                                           initializer=nn.initializer.Constant(0.0)))
            layer.out_bias = layer.create_parameter(
                [config.vocab_size], attr=paddle.ParamAttr(name=names.MASK_LM_OUT_BIAS,
                                                           initializer=nn.initializer.Constant(0.0)),
                is_bias=True)
        return layer

    @staticmethod
    def logits(layer, sequence, positions, encoder):
        """Logits [M, vocab] at the M `positions` of the flattened [B * T] sequence output."""
        import paddle

        from ernie.kernels import cpu_kernels
        from ernie.model.modeling import activation
        flat = paddle.reshape(sequence, [-1, sequence.shape[-1]])
        masked = paddle.gather(flat, positions)  # gather before the vocabulary projection
        trans = layer.trans_layer_norm(activation(layer.trans_fc(masked), layer.hidden_act, layer.training))
        word_embedding = encoder.embeddings.word_embedding.weight
        return cpu_kernels.bias_add(cpu_kernels.matmul(trans, word_embedding, True, layer.training), layer.out_bias,
                                    layer.training)

    def loss(self, layer, encoder, sequence, pooled, batch):
        from ernie.model.losses import masked_mean_cross_entropy
        return masked_mean_cross_entropy(self.logits(layer, sequence, batch["mask_pos"], encoder), batch["mask_label"],
                                         layer.training)


@register(options=KnowledgeMaskingOptions, head=MaskedLMHead)
class KnowledgeMasking(DataTask):
    name, task_id, level = "knowledge_masking", 0, TOKEN
    MASK_POS, MASK_LABEL = Field("mask_pos", "int32", LIST), Field("mask_label", "int32", LIST)  # offline masking
    fields = (Field("seg_basic"), Field("seg_knowledge"), MASK_POS, MASK_LABEL)
    description = "the tokens of masked words, phrases and entities (word-aware)"
    compared_with_unigram_entropy = True  # it predicts the masked tokens

    # ---- data generation: unit boundaries, and masking when it is done offline ---------------
    def prepare(self, config, read_corpus) -> Dict[str, str]:
        """English collocations by PMI over the whole corpus (Chinese phrases are its words), as
        two strings: `words`, the phrases' distinct words in the order they first occur, and
        `pairs`, each phrase's two words as indices into them, phrases in sorted order (a `_WORD`
        holds no whitespace, so spaces separate both).

        Not a list of pairs of words, because the phrase list grows with the corpus up to
        `max_phrases` (50,000 by 100 MB of English), the main process keeps the state for the
        whole run and every worker is forked with it: 50,000 tuples, scattered through the memory
        the counting had freed (which they then kept from going back to the system), held 14 MB
        of the main process. And each word once: a generator pins the words in its lexicon
        (`setup`), and making a string of each of the 100,000 words of 50,000 phrases to keep
        their 34,000 distinct ones left the memory of the others held by the kept ones, 10 MB
        more in each process."""
        if config.lang != "en":
            return {"words": "", "pairs": ""}
        options = self.options
        colloc = Collocations(options.collocation_min_count, options.collocation_min_pmi,
                              stopwords=load_stopwords(config.stopwords),
                              max_pairs=options.collocation_max_pairs, max_words=options.collocation_max_words)
        batch: List[str] = []
        for doc in read_corpus():
            batch += [s.text for s in doc.sentences]
            if len(batch) >= 20_000:  # a batch's pairs are merged into the bounded table
                colloc.count(batch)
                batch = []
        colloc.count(batch)
        index: Dict[str, int] = {}
        pairs = [index.setdefault(w, len(index)) for pair in sorted(colloc.finish().phrases) for w in pair]
        return {"words": " ".join(index), "pairs": " ".join(map(str, pairs))}

    def lexicon_words(self, phrases) -> List[str]:
        """The phrases' distinct words (`prepare`), or the words of each pair in turn of the list
        of pairs that a `corpus_states.json` written before held (the lexicon takes each once)."""
        if isinstance(phrases, dict):
            return phrases["words"].split()
        return [w for pair in phrases or () for w in pair]

    def check_resources(self) -> None:
        load_entity_list(self.options.entities, "en")

    def setup(self, generator, phrases) -> None:
        # pinned words keep their ids when the lexicon is reset, and so do these pairs
        ids = generator.lexicon.ids(self.lexicon_words(phrases))
        if isinstance(phrases, dict):  # parsed by numpy: no Python object a phrase
            ids = ids[np.fromstring(phrases["pairs"], dtype=np.int64, sep=" ")]
        self.phrase_pairs = ids.reshape(-1, 2)
        self.n_phrases = len(self.phrase_pairs)
        self.entities = load_entity_list(self.options.entities, generator.config.lang)

    def token_labels(self, chunk, context, stats):
        seg_basic = np.where(chunk.basic_start, 0, 1).astype(np.int8)
        seg_knowledge, counts = knowledge_segments(chunk, context.generator.config.lang, self.phrase_pairs,
                                                   self.entities, seg_basic)
        stats.update(counts)
        return {"seg_basic": seg_basic, "seg_knowledge": seg_knowledge}

    def finish_block(self, block, generator, rng, stats) -> None:
        """With `masking: offline`, masks the block's examples in place and stores what was masked."""
        options = self.options
        if options.masking != "offline":
            return
        none = np.zeros(0, np.int32)
        positions, labels = [], []
        offsets = (np.cumsum(block["lengths"]) - block["lengths"]).tolist()
        bit = 1 << self.task_id
        for start, n, tasks in zip(offsets, block["lengths"].tolist(), block["token_tasks"].tolist()):
            pos = label = none
            if tasks & bit:
                span = slice(start, start + n)
                block["src_ids"][span], pos, label = mask_example(
                    block["src_ids"][span], block["seg_basic"][span], block["seg_knowledge"][span], rng,
                    options.knowledge_unit_prob, len(generator.tokenizer), generator.tokenizer.mask_id,
                    generator.first_normal_id, options.mask_ratio)
            positions.append(pos)
            labels.append(label)
        set_list(block, self.MASK_POS, positions)
        set_list(block, self.MASK_LABEL, labels)
        stats["masked_tokens"] += sum(len(pos) for pos in positions)

    def count_labels(self, labels) -> dict:
        return {"units": int((labels["seg_knowledge"] == 0).sum()),
                "basic_units": int((labels["seg_basic"] == 0).sum())}

    def manifest_entries(self, generator, stats) -> dict:
        return {"knowledge_units": {"phrase_units": stats["phrase_units"], "entity_units": stats["entity_units"],
                                    "collocation_phrases": self.n_phrases}}

    # ---- reading: masking on the fly, or the stored masks --------------------------------------
    @classmethod
    def feed_specs(cls) -> dict:
        return {"mask_pos": ([-1], "int64"), "mask_label": ([-1], "int64")}

    def batch_labels(self, examples, length, batch) -> dict:
        """Masks each example (online masking, seeded by the step) or reads its stored masks;
        `mask_pos` indexes the flattened [B * T] batch, as the original's gather does. A batch
        without a unit to mask (examples of special tokens only) feeds `no_labels`' ignored row,
        as an inactive task does: its loss is 0."""
        options = self.options
        positions, labels = [], []
        for row, ex in enumerate(examples):
            if options.masking == "online":
                batch.src[row], pos, label = mask_example(
                    batch.src[row], ex.labels["seg_basic"], ex.labels["seg_knowledge"], batch.rng,
                    options.knowledge_unit_prob, batch.vocab_size, batch.mask_token_id, batch.first_normal_id,
                    options.mask_ratio)
            else:
                pos, label = ex.lists["mask_pos"], ex.lists["mask_label"]
            positions.append(row * length + np.asarray(pos, np.int64))
            labels.append(np.asarray(label, np.int64))
        if not sum(map(len, labels)):
            return self.no_labels(len(examples), length)
        return {"mask_pos": np.concatenate(positions), "mask_label": np.concatenate(labels)}

    def no_labels(self, n, length) -> dict:
        # row 0 gathered, its label ignored: the head runs as in any batch, its loss 0
        return {"mask_pos": np.zeros(1, np.int64), "mask_label": np.full(1, -1, np.int64)}

    def vocab_logits_share(self) -> float:
        """The masked positions: about `mask_ratio` of the tokens (that share of the units, each masked whole)."""
        return self.options.mask_ratio

    # ---- inspect -------------------------------------------------------------------------------
    def describe(self, example, tokens, original, manifest) -> dict:
        out = {"knowledge_units": knowledge_units(original, example.labels["seg_knowledge"])}
        if len(example.lists["mask_pos"]):
            out["masked"] = [f"{int(p)}:{original[int(p)]}->{tokens[int(p)]}" for p in example.lists["mask_pos"]]
        return out

    @classmethod
    def restore_tokens(cls, ids, lists) -> None:
        """The original tokens of the offline-masked positions."""
        positions, starts = lists["mask_pos"]
        ids[starts + positions] = lists["mask_label"][0]
