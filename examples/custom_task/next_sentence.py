"""Next-sentence prediction, an eighth pre-training task, written as a user writes one: this
module alone, named in the data and pre-training configs' `task_modules`.

BERT and ERNIE 1.0 trained it; ERNIE 2.0 replaced it by sentence distance and reordering. An
example is a text segment cut in two runs of whole sentences, A and B: label 0 when B is the run
that follows A in its document, 1 when B comes from another document (drawn with probability
one half). It needs no data but the corpus. Its head keeps the original ERNIE name of this task's
head, `next_sent_fc`, so the head of a released ERNIE checkpoint (converted with
`ernie.convert`) is loaded when pre-training continues from it (`init_model:`).
"""
from bisect import bisect_left

from data_gen.data_task import DataTask
from ernie.model import param_names as names
from ernie.pretrain.task_head import LinearHead
from ernie_common.tasks import SENTENCE, register

IS_NEXT, RANDOM = 0, 1


class NextSentenceHead(LinearHead):
    """The usual linear head over the pooled output, under the original ERNIE name."""

    def parameter_names(self):
        return names.fc_weight(names.NEXT_SENT_FC), names.fc_bias(names.NEXT_SENT_FC)


@register(head=NextSentenceHead)
class NextSentence(DataTask):
    name, task_id, level = "next_sentence", 7, SENTENCE
    text_task = True  # made from text segments, like reordering and distance
    description = "does the second run of sentences follow the first? (BERT's next-sentence prediction)"

    def num_classes(self, generator) -> int:
        return 2

    def segment_example(self, context, segment, rng, stats):
        first, end = segment
        if end - first < 2 and len(context.non_empty) < 2:
            stats["skipped/next_sentence_impossible"] += 1
            return None
        middle = first + max(1, (end - first) // 2)
        a = context.token_range(first, middle)
        if middle < end and (len(context.non_empty) < 2 or rng.random() < 0.5):
            return context.plan([a, context.token_range(middle, end)], self, IS_NEXT, stats)
        # B: as many sentences as the second half, from a document other than A's
        others = context.non_empty
        k = int(rng.integers(len(others) - 1))
        other = others[k + (k >= bisect_left(others, context.doc_index))]
        o_first, o_end = int(context.doc_bounds[other]), int(context.doc_bounds[other + 1])
        length = max(1, end - middle)
        start = o_first + int(rng.integers(max(1, o_end - o_first - length + 1)))
        return context.plan([a, context.token_range(start, min(start + length, o_end))], self, RANDOM, stats)

    def describe(self, example, tokens, original, manifest):
        return {"label": f"{example.label} {('is_next', 'random')[example.label]}"}
