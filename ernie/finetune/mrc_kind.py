"""Span-extraction reading comprehension (SQuAD, CMRC 2018, DRCD, DuReader).

Each example becomes one or more features `[CLS] question [SEP] window [SEP]`: the question cut
to `max_query_len` pieces, the context cut into windows that start every `doc_stride` pieces
(BERT's doc stride). In training, a window that does not hold the whole answer points at [CLS]
(position 0). A prediction is the window span with the highest start + end logit among the
`n_best` starts and ends of every window, at most `max_answer_len` pieces long; its text is cut
from the original context through the tokenizer's character offsets, so the answer keeps the
context's case and spacing.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
import paddle
import paddle.nn.functional as F

from ernie.finetune.examples import MrcExample
from ernie.finetune.qa_metrics import cmrc_scores, squad_scores
from ernie.finetune.settings import SettingsError
from ernie.model.features import pad_batch


class MrcKind:
    head = "span"
    n_outputs = 2
    output_names = ["start_logits", "end_logits"]

    def __init__(self, task, tokenizer, max_seq_len: int, labels=(), doc_stride: int = 128,
                 max_query_len: int = 64, max_answer_len: int = 30, n_best: int = 20):
        self.task, self.tokenizer, self.max_seq_len = task, tokenizer, max_seq_len
        self.labels = []
        self.doc_stride, self.max_query_len = doc_stride, max_query_len
        self.max_answer_len, self.n_best = max_answer_len, n_best

    def features(self, examples: Sequence[MrcExample], with_labels: bool) -> List[dict]:
        questions = self.tokenizer.encode_batch([e.question for e in examples])
        features = []
        for index, (example, question) in enumerate(zip(examples, questions)):
            question = question[:self.max_query_len]
            ids, offsets = self.tokenizer.encode_with_offsets(example.context)
            window = self.max_seq_len - len(question) - 3
            if window < 1:
                raise SettingsError(f"max_seq_len {self.max_seq_len} leaves no room for the context beside a "
                                    f"question of {len(question)} pieces: raise max_seq_len to max_query_len + 4 "
                                    f"({self.max_query_len + 4}), or lower max_query_len (questions are cut to it)")
            answer = self._answer_pieces(example, offsets) if with_labels else None
            if with_labels and answer is None:
                continue  # the answer cannot be located in the context: nothing to learn
            first = len(question) + 2
            for start in range(0, max(len(ids) - window, 0) + self.doc_stride, self.doc_stride):
                end = min(start + window, len(ids))
                position = (0, 0)
                if answer and start <= answer[0] and answer[1] < end:
                    position = (answer[0] - start + first, answer[1] - start + first)
                cls, sep = self.tokenizer.cls_id, self.tokenizer.sep_id
                src = [cls] + question + [sep] + ids[start:end] + [sep]
                features.append({"example": index, "src": src, "first": first, "offsets": offsets[start:end],
                                 "sent": [0] * first + [1] * (end - start + 1),
                                 "position": position if with_labels else None})
                if end == len(ids):
                    break
        return features

    @staticmethod
    def _answer_pieces(example: MrcExample, offsets):
        located = [(text, start) for text, start in example.answers if start is not None]
        if not located:
            return None
        text, start = located[0]
        stop = start + len(text)
        pieces = [i for i, (a, b) in enumerate(offsets) if a < stop and b > start]
        return (pieces[0], pieces[-1]) if pieces else None

    def batch(self, features: Sequence[dict], task_id: int) -> Dict[str, np.ndarray]:
        feed = pad_batch([(f["src"], f["sent"]) for f in features], self.tokenizer.pad_id, task_id)
        if features[0]["position"] is not None:
            feed["start_positions"] = np.array([[f["position"][0]] for f in features], dtype=np.int64)
            feed["end_positions"] = np.array([[f["position"][1]] for f in features], dtype=np.int64)
        return feed

    def label_feeds(self) -> Dict[str, paddle.Tensor]:
        return {name: paddle.static.data(name, [-1, 1], "int64") for name in ("start_positions", "end_positions")}

    def loss(self, logits, labels):
        start_logits, end_logits = logits[:, :, 0], logits[:, :, 1]
        return (F.cross_entropy(start_logits, labels["start_positions"]) +
                F.cross_entropy(end_logits, labels["end_positions"])) / 2

    def outputs(self, logits) -> Dict[str, paddle.Tensor]:
        return {"start_logits": logits[:, :, 0], "end_logits": logits[:, :, 1]}

    def decode(self, features: Sequence[dict], outputs: Dict[str, np.ndarray]) -> list:
        """Per feature: (score, start char, end char) of its best span, or None."""
        decoded = []
        for f, starts, ends in zip(features, outputs["start_logits"], outputs["end_logits"]):
            n_context = len(f["offsets"])
            starts, ends = starts[f["first"]:f["first"] + n_context], ends[f["first"]:f["first"] + n_context]
            best = None
            for s in np.argsort(-starts)[:self.n_best]:
                for e in np.argsort(-ends)[:self.n_best]:
                    if s <= e < s + self.max_answer_len:
                        score = float(starts[s] + ends[e])
                        if best is None or score > best[0]:
                            best = (score, f["offsets"][s][0], f["offsets"][e][1])
            decoded.append(best)
        return decoded

    def predictions(self, decoded: list, features, examples: Sequence[MrcExample]) -> list:
        best = [None] * len(examples)
        for f, span in zip(features, decoded):
            if span and (best[f["example"]] is None or span[0] > best[f["example"]][0]):
                best[f["example"]] = span
        return [examples[i].context[span[1]:span[2]] if span else "" for i, span in enumerate(best)]

    def evaluate(self, predictions: list, examples: Sequence[MrcExample]) -> Dict[str, float]:
        score = cmrc_scores if self.task.lang == "zh" else squad_scores
        return score({e.qid: p for e, p in zip(examples, predictions)},
                     {e.qid: [text for text, _ in e.answers] for e in examples})

    def format(self, prediction) -> str:
        return prediction
