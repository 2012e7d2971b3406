"""Turns chunks of documents into examples of every configured task.

A chunk is a fixed run of consecutive documents, and its random generator is seeded by
(seed, chunk index): the examples depend on the corpus and the config only, never on how many
worker processes share the chunks. Each document is cut into *segments*: runs of consecutive
sentences (across paragraph breaks) that fill `max_seq_len`. A segment becomes one text example,
carrying the token-level labels its corpus supports and one sentence-level task drawn from the
configured text tasks (reordering, distance). Discourse pairs are mined from consecutive
sentences; IR pairs come from the click log.
"""
from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from ernie.task_names import (CAPITALIZATION, DISCOURSE_RELATION, IR_RELEVANCE, KNOWLEDGE_MASKING,
                              SENTENCE_DISTANCE, SENTENCE_REORDERING, SENTENCE_TASKS, TOKEN_DOCUMENT)
from ernie.tokenization import FullTokenizer, first_normal_id

from .config import DataConfig
from .documents import Click, Document
from .examples import LABEL_FIELDS, NO_TASK, Plan, TokenTable, assemble, token_task_bit
from .tasks import knowledge_masking as km
from .tasks.capitalization import case_labels
from .tasks.discourse_relation import MarkerList
from .tasks.ir_relevance import relevance_pairs
from .tasks.sentence_distance import CLASS_NAMES as DISTANCE_CLASSES
from .tasks.sentence_distance import OTHER_DOCUMENT, choose_pair
from .tasks.sentence_reordering import split_and_shuffle
from .tasks.token_document import token_document_labels
from .tokenized import ChunkTokenizer, Lexicon, TokenizedChunk

Block = Dict[str, np.ndarray]


def load_stopwords(path: Optional[str]) -> Set[str]:
    if not path:
        return set()
    with open(path, encoding="utf-8") as f:
        return {line.strip().lower() for line in f if line.strip()}


class ExampleGenerator:
    def __init__(self, config: DataConfig, phrases: Set[Tuple[str, str]]):
        self.config = config
        self.tasks = set(config.tasks)
        self.tokenizer = FullTokenizer(config.vocab, config.do_lower_case)
        self.stopwords = load_stopwords(config.stopwords)
        phrase_words = [w for pair in sorted(phrases) for w in pair]
        self.lexicon = Lexicon(self.stopwords, pinned=phrase_words)
        # pinned words keep their ids when the lexicon is reset, and so do these pairs
        self.phrase_pairs = self.lexicon.ids(phrase_words).reshape(-1, 2)
        self.chunk_tokenizer = ChunkTokenizer(self.tokenizer, config.lang, self.lexicon)
        self.entities = km.load_entity_list(config.entities, config.lang)
        self.markers = (MarkerList.from_yaml(config.discourse_markers)
                        if DISCOURSE_RELATION in self.tasks and config.discourse_markers else None)
        self.text_sentence_tasks = [t for t in (SENTENCE_REORDERING, SENTENCE_DISTANCE) if t in self.tasks]
        m = config.reorder_max_segments if SENTENCE_REORDERING in self.tasks else 2
        self.segment_budget = config.max_seq_len - (m + 1)
        self.token_tasks = 0
        for name in (KNOWLEDGE_MASKING, CAPITALIZATION, TOKEN_DOCUMENT):
            if name in self.tasks and not (name == CAPITALIZATION and config.lang != "en"):
                self.token_tasks |= token_task_bit(name)
        self.first_normal_id = first_normal_id(self.tokenizer.vocab)

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

    def _token_labels(self, chunk: TokenizedChunk, segments, stats: Counter) -> Dict[str, np.ndarray]:
        none = np.full(len(chunk.ids), -1, np.int8)
        labels = {name: none for name in LABEL_FIELDS}
        if KNOWLEDGE_MASKING in self.tasks:
            labels["seg_basic"] = np.where(chunk.basic_start, 0, 1).astype(np.int8)
            labels["seg_knowledge"], counts = km.knowledge_segments(
                chunk, self.config.lang, self.phrase_pairs, self.entities, labels["seg_basic"])
            stats.update(counts)
        if self.token_tasks & token_task_bit(CAPITALIZATION):
            labels["case_label"] = case_labels(chunk)
        if TOKEN_DOCUMENT in self.tasks:
            flat = [(d, seg) for d, doc in enumerate(segments) for seg in doc]
            sentence_segment = np.zeros(chunk.n_sentences, np.int64)
            for k, (_, (first, end)) in enumerate(flat):
                sentence_segment[first:end] = k
            segment_document = np.asarray([d for d, _ in flat], np.int64)
            labels["tokdoc_label"] = token_document_labels(chunk, sentence_segment, segment_document)
        return labels

    # ---- examples -------------------------------------------------------------------------

    @staticmethod
    def _plan(parts, task: Optional[str], label: int, token_tasks: int, stats: Counter) -> Plan:
        if task:
            stats[f"examples/{task}"] += 1
            stats[f"labels/{task}/{label}"] += 1
        else:
            stats["examples/token_tasks_only"] += 1
        return Plan(parts, SENTENCE_TASKS.index(task) if task else NO_TASK, label, token_tasks)

    def _text_plans(self, tokens: np.ndarray, doc_bounds: np.ndarray, segments, doc_index: int,
                    non_empty: List[int], rng, stats) -> List[Plan]:
        """`tokens`: the sentences' token offsets; sentences are indexed chunk-wide."""
        plans = []
        for first, end in segments:
            task = (self.text_sentence_tasks[int(rng.integers(len(self.text_sentence_tasks)))]
                    if self.text_sentence_tasks else None)
            if task == SENTENCE_REORDERING:
                order, _, label = split_and_shuffle(end - first, self.config.reorder_max_segments, rng)
                pieces = [(int(tokens[first + a]), int(tokens[first + b])) for a, b in order]
                plans.append(self._plan(pieces, task, label, self.token_tasks, stats))
            elif task == SENTENCE_DISTANCE:
                plan = self._distance_plan(tokens, doc_bounds, first, end, doc_index, non_empty, rng, stats)
                if plan is not None:
                    plans.append(plan)
            else:
                plans.append(self._plan([(int(tokens[first]), int(tokens[end]))], None, -1, self.token_tasks, stats))
        return plans

    def _distance_plan(self, tokens, doc_bounds, first, end, doc_index, non_empty, rng, stats) -> Optional[Plan]:
        doc_first, doc_end = int(doc_bounds[doc_index]), int(doc_bounds[doc_index + 1])
        a_start = first - doc_first
        a_end = a_start + max(1, (end - first) // 2)
        b_len = max(1, (end - first) - (a_end - a_start))
        n_others = len(non_empty) - 1  # this document is among the non-empty ones
        counts = [stats[f"distance_class/{name}"] for name in DISTANCE_CLASSES]
        choice = choose_pair(doc_end - doc_first, a_start, a_end, b_len, n_others > 0, rng, counts)
        if choice is None:
            stats["distance_pair_impossible"] += 1
            return None
        label, b_range = choice
        if label == OTHER_DOCUMENT:
            k = int(rng.integers(n_others))
            other = non_empty[k + (k >= bisect_left(non_empty, doc_index))]
            o_first, o_end = int(doc_bounds[other]), int(doc_bounds[other + 1])
            start = o_first + int(rng.integers(max(1, o_end - o_first - b_len + 1)))
            b = (start, min(start + b_len, o_end))
        else:
            b = (doc_first + b_range[0], doc_first + b_range[1])
        stats[f"distance_class/{DISTANCE_CLASSES[label]}"] += 1
        pieces = [(int(tokens[doc_first + a_start]), int(tokens[doc_first + a_end])),
                  (int(tokens[b[0]]), int(tokens[b[1]]))]
        return self._plan(pieces, SENTENCE_DISTANCE, label, self.token_tasks, stats)

    def _discourse_plans(self, docs: Sequence[Document], sentence_tokens: np.ndarray, table: TokenTable,
                         stats) -> List[Plan]:
        """Pairs of consecutive sentences of a paragraph whose second starts with a marker: the
        first as tokenized in the chunk, the second re-tokenized without its marker."""
        pairs, index = [], 0
        for doc in docs:
            for paragraph in doc.paragraphs:
                for k, second in enumerate(paragraph[1:]):
                    found = self.markers.match(second.text)
                    if found:
                        pairs.append((index + k, found[1], found[0]))
                index += len(paragraph)
        if not pairs:
            return []
        stream = self.chunk_tokenizer.pieces.encode([rest for _, rest, _ in pairs])
        row = table.append_unlabelled(stream.ids)
        plans = []
        for k, (sentence, _, label) in enumerate(pairs):
            a = (int(sentence_tokens[sentence]), int(sentence_tokens[sentence + 1]))
            b = (row + int(stream.text_tokens[k]), row + int(stream.text_tokens[k + 1]))
            if a[0] == a[1] or b[0] == b[1]:
                stats["discourse_pair_without_tokens"] += 1
                continue
            stats[f"discourse_marker/{self.markers.markers[label]}"] += 1
            plans.append(self._plan([a, b], DISCOURSE_RELATION, label, 0, stats))
        return plans

    def _assemble(self, table: TokenTable, plans: List[Plan], rng, stats) -> Block:
        block = assemble(table, plans, self.tokenizer.cls_id, self.tokenizer.sep_id, self.config.max_seq_len)
        if self.config.masking == "offline":
            self._mask_offline(block, rng, stats)
        return block

    def _mask_offline(self, block: Block, rng, stats: Counter) -> None:
        """Masks the knowledge-masking examples of a block in place and stores what was masked."""
        bit = token_task_bit(KNOWLEDGE_MASKING)
        positions, labels, counts = [], [], np.zeros(len(block["lengths"]), np.int64)
        offsets = (np.cumsum(block["lengths"]) - block["lengths"]).tolist()
        for i, (start, n, tasks) in enumerate(zip(offsets, block["lengths"].tolist(), block["token_tasks"].tolist())):
            if not tasks & bit:
                continue
            span = slice(start, start + n)
            block["src_ids"][span], pos, label = km.mask_example(
                block["src_ids"][span], block["seg_basic"][span], block["seg_knowledge"][span], rng,
                self.config.knowledge_unit_prob, len(self.tokenizer), self.tokenizer.mask_id,
                self.first_normal_id, self.config.mask_ratio)
            positions.append(pos)
            labels.append(label)
            counts[i] = len(pos)
        if positions:
            block["mask_pos"] = np.concatenate(positions).astype(np.int32)
            block["mask_label"] = np.concatenate(labels).astype(np.int32)
        block["mask_lengths"] = counts
        stats["masked_tokens"] += int(counts.sum())

    def process_chunk(self, chunk_index: int, docs: Sequence[Document]) -> Tuple[Block, Counter]:
        """The chunk's examples as one block (`examples.assemble`), and what was counted."""
        stats: Counter = Counter()
        rng = np.random.default_rng([self.config.seed, chunk_index])
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
        table = TokenTable(chunk.ids, self._token_labels(chunk, segments, stats))
        non_empty = np.flatnonzero(per_doc).tolist()
        plans = []
        for d, doc_segments in enumerate(segments):
            plans += self._text_plans(chunk.sentence_tokens, doc_bounds, doc_segments, d, non_empty, rng, stats)
        if self.markers is not None:
            plans += self._discourse_plans(docs, whole.sentence_tokens, table, stats)
        stats["documents"] += len(docs)
        return self._assemble(table, plans, rng, stats), stats

    def ir_examples(self, log: Sequence[Click], chunk_index: int) -> Tuple[Block, Counter]:
        stats: Counter = Counter()
        rng = np.random.default_rng([self.config.seed, chunk_index])
        pairs = relevance_pairs(log, rng, stats)
        stream = self.chunk_tokenizer.pieces.encode([t for q, title, _ in pairs for t in (q, title)])
        table = TokenTable.unlabelled(stream.ids)
        bounds = stream.text_tokens.tolist()
        plans = [self._plan([(bounds[2 * k], bounds[2 * k + 1]), (bounds[2 * k + 1], bounds[2 * k + 2])],
                            IR_RELEVANCE, label, 0, stats)
                 for k, (_, _, label) in enumerate(pairs)]
        return self._assemble(table, plans, rng, stats), stats
