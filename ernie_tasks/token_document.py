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

from data_gen.data_task import DataTask
from data_gen.decode import word_labels
from data_gen.tokenized import CONTENT, TokenizedChunk
from ernie.pretrain.task_head import LinearHead
from ernie_common.tasks import TOKEN, register


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
    per_word = np.full(len(chunk.lexeme), -1, np.int8)
    per_word[content] = np.where(several, elsewhere, -1)
    labels = per_word[chunk.word]
    labels[~chunk.word_start] = -1
    return labels


@register(head=LinearHead)
class TokenDocument(DataTask):
    name, task_id, level = "token_document", 2, TOKEN
    label_fields = ("tokdoc_label",)
    description = "does this word occur in another segment of its document? (word-aware)"

    def token_labels(self, chunk, context, stats):
        flat = [(d, seg) for d, doc in enumerate(context.segments) for seg in doc]
        sentence_segment = np.zeros(chunk.n_sentences, np.int64)
        for k, (_, (first, end)) in enumerate(flat):
            sentence_segment[first:end] = k
        segment_document = np.asarray([d for d, _ in flat], np.int64)
        return {"tokdoc_label": token_document_labels(chunk, sentence_segment, segment_document)}

    def describe(self, example, tokens, original, manifest):
        return {self.name: word_labels(original, example.labels["tokdoc_label"])}
