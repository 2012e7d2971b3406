"""Exact match and F1 of extractive reading comprehension, as the official scripts define them.

- `squad_scores` (English, SQuAD v1.1's evaluate script): answers are lower-cased, stripped of
  punctuation and of the articles a/an/the, and split at whitespace; F1 counts the words shared
  with the best-matching reference answer.
- `cmrc_scores` (Chinese, CMRC 2018's script, also used for DRCD and DuReader): text is
  lower-cased and split into single CJK characters and punctuation marks, with runs of other
  characters split into words; F1 is computed from the longest common *contiguous* run of
  segments; exact match compares the strings with the punctuation marks removed. The runs of
  other characters are split by NLTK's Treebank word tokenizer, as the official script's
  `nltk.word_tokenize` splits them (`1.5` and `2,000` one token each, `don't` as `do n't`: a
  regular expression gave a wrong number part of the credit); the sentence split word_tokenize
  does first, which needs NLTK's punkt data, is left out: an answer is a span of a sentence.

Both return percentages averaged over the questions, each question scored against its best
reference answer.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from typing import Dict, List, Mapping, Sequence

from nltk.tokenize import NLTKWordTokenizer

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)
# The separators the CMRC 2018 script treats as punctuation (single characters only).
_CMRC_PUNCTUATION = set("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』")
_CJK = re.compile(r"[\u4e00-\u9fa5]")
_WORDS = NLTKWordTokenizer().tokenize  # what nltk.word_tokenize applies to each sentence


def normalize_squad(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def squad_f1(prediction: str, answer: str) -> float:
    predicted, gold = normalize_squad(prediction).split(), normalize_squad(answer).split()
    shared = sum((Counter(predicted) & Counter(gold)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(gold)
    return 2 * precision * recall / (precision + recall)


def cmrc_segments(text: str, drop_punctuation: bool = True) -> List[str]:
    segments, run = [], ""
    for ch in text.lower().strip():
        if drop_punctuation and ch in _CMRC_PUNCTUATION:
            continue
        if _CJK.match(ch) or ch in _CMRC_PUNCTUATION:
            segments += _WORDS(run)
            run = ""
            segments.append(ch)
        else:
            run += ch
    return segments + _WORDS(run)


def _longest_common_run(a: Sequence[str], b: Sequence[str]) -> int:
    best, previous = 0, [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def cmrc_f1(prediction: str, answer: str) -> float:
    predicted, gold = cmrc_segments(prediction), cmrc_segments(answer)
    shared = _longest_common_run(gold, predicted)
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(gold)
    return 2 * precision * recall / (precision + recall)


def _strip_cmrc_punctuation(text: str) -> str:
    return "".join(ch for ch in text.lower().strip() if ch not in _CMRC_PUNCTUATION)


def _average(predictions: Mapping[str, str], answers: Mapping[str, Sequence[str]], exact, overlap
             ) -> Dict[str, float]:
    missing = [qid for qid in answers if qid not in predictions]
    if missing:
        raise KeyError(f"no prediction for {len(missing)} question(s), first {missing[:3]}")
    em = f1 = 0.0
    for qid, references in answers.items():
        em += max(float(exact(predictions[qid], ref)) for ref in references)
        f1 += max(overlap(predictions[qid], ref) for ref in references)
    n = max(len(answers), 1)
    return {"em": 100.0 * em / n, "f1": 100.0 * f1 / n}


def squad_scores(predictions: Mapping[str, str], answers: Mapping[str, Sequence[str]]) -> Dict[str, float]:
    return _average(predictions, answers, lambda p, a: normalize_squad(p) == normalize_squad(a), squad_f1)


def cmrc_scores(predictions: Mapping[str, str], answers: Mapping[str, Sequence[str]]) -> Dict[str, float]:
    return _average(predictions, answers,
                    lambda p, a: _strip_cmrc_punctuation(p) == _strip_cmrc_punctuation(a), cmrc_f1)
