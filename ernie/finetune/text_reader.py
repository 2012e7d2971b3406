"""Sentence and sentence-pair TSV files (GLUE, CLUE and the original ERNIE Chinese tasks)."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import List, Optional, Union

from ernie.finetune.examples import DataError, TextExample
from ernie.finetune.tsv import column_index, read_tsv

Column = Union[str, int]


@dataclass(frozen=True)
class TextLayout:
    """Where a file keeps its fields: header column names, or indices for a file without header
    (then `n_columns` says how many each row has). `guid` is the id column of test files;
    without one, examples are numbered from 0 in file order."""
    text_a: Column
    text_b: Optional[Column] = None
    label: Optional[Column] = None
    guid: Optional[Column] = None
    qid: Optional[Column] = None
    header: bool = True
    n_columns: Optional[int] = None


def read_text_examples(path, layout: TextLayout, regression: bool = False,
                       skipped: Optional[Counter] = None, test: bool = False) -> List[TextExample]:
    """Examples of one file. Every row of a label column gives a label (a regression score: a
    finite number), except in a `test` file that leaves the column empty on every row: such a
    file is unlabelled, as GLUE's test files are without the column."""
    columns, rows = read_tsv(path, layout.header, skipped, layout.n_columns)

    def index(column: Optional[Column]) -> Optional[int]:
        if column is None or isinstance(column, int):
            return column
        return column_index(columns, column, path)

    a, b, label, guid, qid = (index(c) for c in (layout.text_a, layout.text_b, layout.label,
                                                  layout.guid, layout.qid))
    examples, unlabelled = [], []  # unlabelled: the line numbers of rows with an empty label
    for lineno, fields in rows:
        value = fields[label] if label is not None else None
        if value is not None and not value.strip():
            unlabelled.append(lineno)
            value = None
        elif value is not None and regression:
            value = _score(value, path, lineno)
        examples.append(TextExample(guid=fields[guid] if guid is not None else str(len(examples)),
                                    text_a=fields[a], text_b=fields[b] if b is not None else None,
                                    label=value, qid=fields[qid] if qid is not None else None, line=lineno))
    if unlabelled and not (test and len(unlabelled) == len(examples)):
        raise DataError(f"{path}:{unlabelled[0]}: empty label ({len(unlabelled)} of {len(examples)} rows)"
                        + ("; a test file labels every row or none" if test else ""))
    return examples


def _score(value: str, path, lineno: int) -> float:
    """A regression label: a finite number (a NaN score would make its batch's loss NaN)."""
    try:
        score = float(value)
    except ValueError:
        raise DataError(f"{path}:{lineno}: score {value!r} is not a number") from None
    if not math.isfinite(score):
        raise DataError(f"{path}:{lineno}: score {value!r} is not a finite number")
    return score
