"""Next-sentence prediction, an eighth pre-training task, written as a user writes one: this
module alone, named in the data and pre-training configs' `task_modules`, with its settings
under `task_options.next_sentence` of the data config.

BERT and ERNIE 1.0 trained it; ERNIE 2.0 replaced it by sentence distance and reordering. An
example is a text segment cut in two runs of whole sentences, A and B: label 0 when B is the run
that follows A in its document, 1 when B comes from another document (drawn with probability
`swap_probability`, one half as BERT's). It needs no data but the corpus and, optionally, a list
of connectives (`connectives`, one a line: `connectives.txt` beside this file): a sentence that
opens with one ("But", "However", "That is why") continues the argument before it, so A is not
cut off just before it; the cut moves on to the next sentence that opens otherwise, where the
segment has one. Its head keeps the original ERNIE name of this task's head, `next_sent_fc`, so
the head of a released ERNIE checkpoint (converted with `ernie.convert`) is loaded when
pre-training continues from it (`init_model:`).
"""
from bisect import bisect_left
from dataclasses import dataclass
from typing import List, Optional

from data_gen.data_task import DataTask
from ernie.model import param_names as names
from ernie.pretrain.task_head import LinearHead
from ernie_common.tasks import SENTENCE, TaskOptions, register, resource

IS_NEXT, RANDOM = 0, 1


@dataclass
class NextSentenceOptions(TaskOptions):
    swap_probability: float = 0.5          # the share of examples whose B is another document's
    connectives: Optional[str] = resource()  # sentence openers A is not cut off before

    def __post_init__(self):
        if not 0 <= self.swap_probability <= 1:
            raise ValueError(f"swap_probability must be between 0 and 1, got {self.swap_probability}")


class NextSentenceHead(LinearHead):
    """The usual linear head over the pooled output, under the original ERNIE name."""

    def parameter_names(self):
        return names.fc_weight(names.NEXT_SENT_FC), names.fc_bias(names.NEXT_SENT_FC)


@register(options=NextSentenceOptions, head=NextSentenceHead)
class NextSentence(DataTask):
    name, task_id, level = "next_sentence", 7, SENTENCE
    text_task = True  # made from text segments, like reordering and distance
    description = "does the second run of sentences follow the first? (BERT's next-sentence prediction)"

    def setup(self, generator, state) -> None:
        """The connectives as token ids, as the generator's tokenizer cuts them."""
        self.continuation = generator.chunk_tokenizer.continuation
        self.openers: List[List[int]] = []
        if self.options.connectives:
            with open(self.options.connectives, encoding="utf-8") as f:
                words = [line.strip() for line in f if line.strip() and not line.startswith("#")]
            self.openers = [ids for ids in (generator.tokenizer.encode(w) for w in words) if ids]

    def num_classes(self, generator) -> int:
        return 2

    def opens_with_connective(self, context, sentence: int) -> bool:
        start, end = context.token_range(sentence, sentence + 1)
        ids = context.chunk.ids[start:end].tolist()
        return any(ids[:len(o)] == o and (len(ids) == len(o) or not self.continuation[ids[len(o)]])
                   for o in self.openers)

    def cut(self, context, first: int, end: int) -> int:
        """B's first sentence: the segment's middle, moved on past sentences that open with a
        connective while one that does not follows in the segment."""
        middle = first + max(1, (end - first) // 2)
        return next((s for s in range(middle, end) if not self.opens_with_connective(context, s)), middle)

    def segment_example(self, context, segment, rng, stats):
        first, end = segment
        if end - first < 2 and len(context.non_empty) < 2:
            stats["skipped/next_sentence_impossible"] += 1
            return None
        middle = self.cut(context, first, end)
        a = context.token_range(first, middle)
        if middle < end and (len(context.non_empty) < 2 or rng.random() < 1.0 - self.options.swap_probability):
            return context.plan([a, context.token_range(middle, end)], self, IS_NEXT, stats)
        # B: as many sentences as the rest of the segment (at least one), from a document other than A's
        others = context.non_empty
        k = int(rng.integers(len(others) - 1))
        other = others[k + (k >= bisect_left(others, context.doc_index))]
        o_first, o_end = int(context.doc_bounds[other]), int(context.doc_bounds[other + 1])
        length = max(1, end - middle)
        start = o_first + int(rng.integers(max(1, o_end - o_first - length + 1)))
        return context.plan([a, context.token_range(start, min(start + length, o_end))], self, RANDOM, stats)

    def describe(self, example, tokens, original, manifest):
        return {"label": f"{example.label} {('is_next', 'random')[example.label]}"}
