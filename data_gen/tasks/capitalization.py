"""Capitalization prediction: is a word capitalised in the original text?

Labels come from the original cased text through the tokenizer's character offsets, so they exist
also when the vocabulary is uncased. The first piece of each word carries the word's label
(1 capitalised, 0 lower-case); other pieces, words without a cased letter (numbers,
punctuation), [CLS] and [SEP] carry -1 (ignored). English only: Chinese has no case.
"""
import numpy as np

from ..tokenized import TokenizedChunk


def case_labels(chunk: TokenizedChunk) -> np.ndarray:
    """int8 [T] over the chunk's tokens."""
    labels = chunk.case[chunk.word]
    labels[~chunk.word_start] = -1
    return labels
