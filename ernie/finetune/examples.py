"""The examples the readers produce, one type per kind of task."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple


class DataError(ValueError):
    """A fine-tuning file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class TextExample:
    """A sentence or sentence pair; `label` is a class name, a float score, or None (test);
    `guid` is the id the submission file uses; `qid` groups the candidates of a ranking query;
    `line` the line of its file it starts on (0: not from a file), which errors name: not part of
    the example's value (its repr enters a fine-tuning run's fingerprint, `run_fingerprint`)."""
    guid: str
    text_a: str
    text_b: Optional[str] = None
    label: Optional[object] = None
    qid: Optional[str] = None
    line: int = field(default=0, repr=False, compare=False)


@dataclass(frozen=True)
class TaggedExample:
    """Characters (Chinese) or words (English) with one BIO tag each (None for test data)."""
    guid: str
    words: List[str]
    tags: Optional[List[str]] = None


@dataclass(frozen=True)
class MrcExample:
    """A question on a context; `answers` holds (text, character offset in the context, or None
    where the text could not be located)."""
    qid: str
    question: str
    context: str
    answers: List[Tuple[str, Optional[int]]]


def labelled(examples) -> bool:
    """Whether a split gives its answers to score (a label, tags, or answer texts) and has
    examples: GLUE's test files give none."""
    def has_answer(e) -> bool:
        if isinstance(e, MrcExample):
            return bool(e.answers)
        return (e.tags if isinstance(e, TaggedExample) else e.label) is not None
    return bool(examples) and all(has_answer(e) for e in examples)
