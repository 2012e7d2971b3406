"""Token-document relation: does a word of this segment also occur in another segment of its
document?

A *segment* is the run of consecutive sentences that one text example is cut from (the generator
cuts each document into segments that fill `max_seq_len`); a document of one segment gives no
labels. Words are the lexical words of `tokenized` (whole words, not word pieces, lower-cased).
The first piece of a word carries its label (1 occurs elsewhere, 0 not); stop words (the shipped
list), words without a letter or digit, other pieces, [CLS] and [SEP] carry -1: frequent function
words occur everywhere and would teach nothing, as the paper's motivation implies.
"""
import numpy as np

from ..tokenized import CONTENT, TokenizedChunk


def token_document_labels(chunk: TokenizedChunk, sentence_segment: np.ndarray, segment_document: np.ndarray
                          ) -> np.ndarray:
    """int8 [T] over the chunk's tokens, given the segment of each sentence and the document of
    each segment."""
    size = max(1, len(chunk.lexicon.words))
    content = ((chunk.lexicon.flags[chunk.lexeme] & CONTENT) > 0) & (chunk.word_sentence >= 0)
    segment = sentence_segment[chunk.word_sentence[content]]
    document = segment_document[segment]
    lexeme = chunk.lexeme[content]
    # distinct (segment, word) pairs, then how many segments of its document hold each word
    in_segment = np.unique(segment * size + lexeme)
    in_document, n_segments = np.unique(segment_document[in_segment // size] * size + in_segment % size,
                                        return_counts=True)
    elsewhere = n_segments[np.searchsorted(in_document, document * size + lexeme)] > 1
    several = np.bincount(segment_document)[document] > 1  # a document of one segment gives no labels
    word_labels = np.full(len(chunk.lexeme), -1, np.int8)
    word_labels[content] = np.where(several, elsewhere, -1)
    labels = word_labels[chunk.word]
    labels[~chunk.word_start] = -1
    return labels
