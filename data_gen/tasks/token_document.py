"""Token-document relation: does a word of this segment also occur in another segment of its
document?

A *segment* is the run of consecutive sentences that one text example is cut from (the generator
cuts each document into segments that fill `max_seq_len`); a document of one segment gives no
labels. Words are the lexical words of `tokenized` (whole words, not word pieces, lower-cased).
The first piece of a word carries its label (1 occurs elsewhere, 0 not); stop words (the shipped
list), words without a letter or digit, other pieces, [CLS] and [SEP] carry -1: frequent function
words occur everywhere and would teach nothing, as the paper's motivation implies.
"""
import re
from collections import Counter
from typing import List, Sequence, Set

import numpy as np

from ..tokenized import TokSentence


_LETTER_OR_DIGIT = re.compile(r"[^\W_]")


def _content_words(sent: TokSentence, stopwords: Set[str]) -> List[bool]:
    has_alnum = _LETTER_OR_DIGIT.search
    return [w not in stopwords and has_alnum(w) is not None for w in sent.words]


def segment_word_labels(segments: Sequence[Sequence[TokSentence]], stopwords: Set[str]) -> List[List[np.ndarray]]:
    """Per segment, per sentence: token labels."""
    content = [[_content_words(s, stopwords) for s in seg] for seg in segments]
    vocabularies = [{w for s, c in zip(seg, cs) for w, keep in zip(s.words, c) if keep}
                    for seg, cs in zip(segments, content)]
    segments_with = Counter(w for v in vocabularies for w in v)
    out = []
    for seg, cs in zip(segments, content):
        seg_labels = []
        for s, c in zip(seg, cs):
            per_word = np.asarray([(1 if segments_with[w] > 1 else 0) if keep else -1
                                   for w, keep in zip(s.words, c)], dtype=np.int8)
            if len(segments) < 2:
                per_word[:] = -1
            labels = per_word[s.word_of_token] if len(s.ids) else np.zeros(0, np.int8)
            labels[~s.word_start] = -1
            seg_labels.append(labels)
        out.append(seg_labels)
    return out
