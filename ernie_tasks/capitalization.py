"""Capitalization prediction: is a word capitalised in the original text?

Labels come from the original cased text through the tokenizer's character offsets, so they exist
also when the vocabulary is uncased. The first piece of each word carries the word's label
(1 capitalised, 0 lower-case); other pieces, words without a cased letter (numbers,
punctuation), [CLS] and [SEP] carry -1 (ignored). English only: Chinese has no case.
"""
import numpy as np

from data_gen.data_task import DataTask
from data_gen.decode import word_labels
from data_gen.tokenized import TokenizedChunk
from ernie.pretrain.task_head import LinearHead
from ernie_common.tasks import TOKEN, register


def case_labels(chunk: TokenizedChunk) -> np.ndarray:
    """int8 [T] over the chunk's tokens."""
    labels = chunk.case[chunk.word]
    labels[~chunk.word_start] = -1
    return labels


@register(head=LinearHead)
class Capitalization(DataTask):
    name, task_id, level = "capitalization", 1, TOKEN
    label_fields = ("case_label",)
    languages = ("en",)
    description = "is this word capitalised in the original text? (word-aware)"

    def token_labels(self, chunk, context, stats):
        return {"case_label": case_labels(chunk)}

    def describe(self, example, tokens, original, manifest):
        return {self.name: word_labels(original, example.labels["case_label"])}
