"""Which texts the English pre-training corpora hold, so that fine-tuning sets can leave them out.

A text is held by a corpus when it shares a run of `SHINGLE` words with one of its documents
(runs cross sentence ends), or, with fewer words, equals one of its sentences. Words are
lower-cased runs of letters and digits, so case, punctuation and spacing do not hide a copy.
The corpora are State of the Union and the Brown Corpus as `python -m data_gen fetch sotu|brown`
writes them.
"""
from __future__ import annotations

import functools
import re
from typing import Dict, Iterable, List

from .corpora import bert_document_lines, brown_documents, sotu_addresses

SHINGLE = 8


def words(text: str) -> List[str]:
    return re.findall(r"\w+", text.lower())


class CorpusIndex:
    """The word runs of a corpus's documents and its sentences shorter than a run."""

    def __init__(self, documents: Iterable[List[str]]):
        self.runs, self.short = set(), set()
        for sentences in documents:
            stream = []
            for sentence in sentences:
                sentence_words = words(sentence)
                stream += sentence_words
                if 0 < len(sentence_words) < SHINGLE:
                    self.short.add(" ".join(sentence_words))
            self.runs.update(hash(" ".join(stream[i:i + SHINGLE])) for i in range(len(stream) - SHINGLE + 1))

    def holds(self, text: str) -> bool:
        text_words = words(text)
        if len(text_words) < SHINGLE:
            return " ".join(text_words) in self.short
        return any(hash(" ".join(text_words[i:i + SHINGLE])) in self.runs
                   for i in range(len(text_words) - SHINGLE + 1))


@functools.lru_cache(maxsize=1)
def pretraining_indexes() -> Dict[str, CorpusIndex]:
    """{"sotu": ..., "brown": ...}: the indexes of the two English pre-training corpora (built once
    a process: the sets of the suite fetched one after another share them)."""
    sotu = ([line.strip() for line in bert_document_lines([text]) if line.strip()] for _, text in sotu_addresses())
    return {"sotu": CorpusIndex(sotu), "brown": CorpusIndex(sentences for _, sentences in brown_documents())}
