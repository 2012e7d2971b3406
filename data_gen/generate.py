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

from collections import Counter
from typing import List, Optional, Sequence, Set, Tuple

import numpy as np

from ernie.task_names import (CAPITALIZATION, DISCOURSE_RELATION, IR_RELEVANCE, KNOWLEDGE_MASKING,
                              SENTENCE_DISTANCE, SENTENCE_REORDERING, SENTENCE_TASKS, TOKEN_DOCUMENT)
from ernie.tokenization import FullTokenizer, first_normal_id

from .config import DataConfig
from .documents import Click, Document
from .examples import Example, Part, fit_parts, pack, token_task_bit
from .tasks import knowledge_masking as km
from .tasks.capitalization import case_labels
from .tasks.discourse_relation import MarkerList
from .tasks.ir_relevance import relevance_pairs
from .tasks.sentence_distance import CLASS_NAMES as DISTANCE_CLASSES
from .tasks.sentence_distance import OTHER_DOCUMENT, choose_pair
from .tasks.sentence_reordering import split_and_shuffle
from .tasks.token_document import segment_word_labels
from .tokenized import SentenceTokenizer, TokSentence


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
        self.sentence_tokenizer = SentenceTokenizer(self.tokenizer, config.lang)
        self.phrases = phrases
        self.entities = km.load_entity_list(config.entities, config.lang)
        self.stopwords = load_stopwords(config.stopwords)
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

    # ---- per sentence ---------------------------------------------------------------------

    def _split_long(self, toks: List[TokSentence], stats: Counter) -> List[TokSentence]:
        out = []
        for t in toks:
            if len(t) == 0:
                stats["sentence_without_tokens"] += 1
            elif len(t) > self.segment_budget:
                stats["long_sentence_split"] += 1
                out += [t.slice(i, i + self.segment_budget) for i in range(0, len(t), self.segment_budget)]
            else:
                out.append(t)
        return out

    def _token_parts(self, toks: List[TokSentence], segments: List[List[int]], stats: Counter) -> List[Part]:
        tokdoc = (segment_word_labels([[toks[i] for i in seg] for seg in segments], self.stopwords)
                  if TOKEN_DOCUMENT in self.tasks else None)
        parts: List[Optional[Part]] = [None] * len(toks)
        for s_index, seg in enumerate(segments):
            for k, i in enumerate(seg):
                t = toks[i]
                none = np.full(len(t), -1, dtype=np.int8)
                seg_basic, seg_knowledge = none, none
                if KNOWLEDGE_MASKING in self.tasks:
                    spans = km.unit_spans(t, self.config.lang, self.phrases, self.entities, self.stopwords)
                    stats.update(km.count_levels(spans))
                    seg_basic, seg_knowledge = km.segment_labels(t, spans)
                case = case_labels(t) if self.token_tasks & token_task_bit(CAPITALIZATION) else none
                doc_labels = tokdoc[s_index][k] if tokdoc is not None else none
                parts[i] = Part(t.ids, seg_basic, seg_knowledge, case, doc_labels)
        return parts

    def _segments(self, toks: List[TokSentence]) -> List[List[int]]:
        segments, current, used = [], [], 0
        for i, t in enumerate(toks):
            if current and used + len(t) > self.segment_budget:
                segments.append(current)
                current, used = [], 0
            current.append(i)
            used += len(t)
        if current:
            segments.append(current)
        return segments

    # ---- examples -------------------------------------------------------------------------

    def _finish(self, parts: List[Part], task: Optional[str], label: int, token_tasks: int,
                rng: np.random.Generator, stats: Counter) -> Example:
        ex = pack(fit_parts(parts, self.config.max_seq_len), self.tokenizer.cls_id, self.tokenizer.sep_id)
        ex.task = SENTENCE_TASKS.index(task) if task else -1
        ex.label = label
        ex.token_tasks = token_tasks
        if task:
            stats[f"examples/{task}"] += 1
            stats[f"labels/{task}/{label}"] += 1
        else:
            stats["examples/token_tasks_only"] += 1
        if self.config.masking == "offline" and token_tasks & token_task_bit(KNOWLEDGE_MASKING):
            ex.src_ids, ex.mask_pos, ex.mask_label = km.mask_example(
                ex.src_ids, ex.seg_basic, ex.seg_knowledge, rng, self.config.knowledge_unit_prob,
                len(self.tokenizer), self.tokenizer.mask_id, self.first_normal_id, self.config.mask_ratio)
            stats["masked_tokens"] += len(ex.mask_pos)
        return ex

    def _text_examples(self, doc_parts: List[List[Part]], segments: List[List[int]], doc_index: int,
                       rng, stats) -> List[Example]:
        parts = doc_parts[doc_index]
        examples = []
        for segment in segments:
            task = (self.text_sentence_tasks[int(rng.integers(len(self.text_sentence_tasks)))]
                    if self.text_sentence_tasks else None)
            if task == SENTENCE_REORDERING:
                order, _, label = split_and_shuffle(len(segment), self.config.reorder_max_segments, rng)
                pieces = [Part.concat([parts[segment[i]] for i in range(a, b)]) for a, b in order]
                examples.append(self._finish(pieces, task, label, self.token_tasks, rng, stats))
            elif task == SENTENCE_DISTANCE:
                ex = self._distance_example(doc_parts, doc_index, segment, rng, stats)
                if ex is not None:
                    examples.append(ex)
            else:
                examples.append(self._finish([Part.concat([parts[i] for i in segment])], None, -1,
                                             self.token_tasks, rng, stats))
        return examples

    def _distance_example(self, doc_parts, doc_index, segment, rng, stats) -> Optional[Example]:
        parts = doc_parts[doc_index]
        a_start, a_end = segment[0], segment[0] + max(1, len(segment) // 2)
        b_len = max(1, len(segment) - (a_end - a_start))
        others = [d for d in range(len(doc_parts)) if d != doc_index and doc_parts[d]]
        counts = [stats[f"distance_class/{name}"] for name in DISTANCE_CLASSES]
        choice = choose_pair(len(parts), a_start, a_end, b_len, bool(others), rng, counts)
        if choice is None:
            stats["distance_pair_impossible"] += 1
            return None
        label, b_range = choice
        if label == OTHER_DOCUMENT:
            other = doc_parts[others[int(rng.integers(len(others)))]]
            start = int(rng.integers(max(1, len(other) - b_len + 1)))
            b_parts = other[start:start + b_len]
        else:
            b_parts = parts[b_range[0]:b_range[1]]
        stats[f"distance_class/{DISTANCE_CLASSES[label]}"] += 1
        pieces = [Part.concat(parts[a_start:a_end]), Part.concat(b_parts)]
        return self._finish(pieces, SENTENCE_DISTANCE, label, self.token_tasks, rng, stats)

    def _discourse_examples(self, docs: Sequence[Document], rng, stats) -> List[Example]:
        pairs = []
        for doc in docs:
            for paragraph in doc.paragraphs:
                for first, second in zip(paragraph, paragraph[1:]):
                    found = self.markers.match(second.text)
                    if found:
                        pairs.append((first.text, found[1], found[0]))
        if not pairs:
            return []
        ids = self.tokenizer.encode_batch([t for p in pairs for t in p[:2]])
        examples = []
        for k, (_, _, label) in enumerate(pairs):
            a, b = ids[2 * k], ids[2 * k + 1]
            if not a or not b:
                stats["discourse_pair_without_tokens"] += 1
                continue
            stats[f"discourse_marker/{self.markers.markers[label]}"] += 1
            examples.append(self._finish([Part.unlabelled(a), Part.unlabelled(b)],
                                         DISCOURSE_RELATION, label, 0, rng, stats))
        return examples

    def process_chunk(self, chunk_index: int, docs: Sequence[Document]) -> Tuple[List[Example], Counter]:
        stats: Counter = Counter()
        rng = np.random.default_rng([self.config.seed, chunk_index])
        sentences = [s for d in docs for s in d.sentences]
        stats["raw_bytes"] += sum(len(s.text.encode("utf-8")) for s in sentences)
        stats["sentences"] += len(sentences)
        all_toks = self.sentence_tokenizer(sentences)
        stats["unk_tokens"] += int(sum((t.ids == self.tokenizer.unk_id).sum() for t in all_toks))
        stats["tokens"] += sum(len(t) for t in all_toks)
        doc_parts, doc_segments, start = [], [], 0
        for doc in docs:
            n = len(doc.sentences)
            toks = self._split_long(all_toks[start:start + n], stats)
            start += n
            if len(toks) == 1:
                stats["one_sentence_document"] += 1
            segments = self._segments(toks)
            doc_segments.append(segments)
            doc_parts.append(self._token_parts(toks, segments, stats) if toks else [])
        examples = []
        for d in range(len(docs)):
            examples += self._text_examples(doc_parts, doc_segments[d], d, rng, stats)
        if self.markers is not None:
            examples += self._discourse_examples(docs, rng, stats)
        stats["documents"] += len(docs)
        return examples, stats

    def ir_examples(self, log: Sequence[Click], chunk_index: int) -> Tuple[List[Example], Counter]:
        stats: Counter = Counter()
        rng = np.random.default_rng([self.config.seed, chunk_index])
        pairs = relevance_pairs(log, rng, stats)
        ids = self.tokenizer.encode_batch([t for q, title, _ in pairs for t in (q, title)])
        examples = [self._finish([Part.unlabelled(ids[2 * k]), Part.unlabelled(ids[2 * k + 1])],
                                 IR_RELEVANCE, label, 0, rng, stats)
                    for k, (_, _, label) in enumerate(pairs)]
        return examples, stats
