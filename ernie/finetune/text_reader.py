"""Sentence and sentence-pair TSV files (GLUE, CLUE and the original ERNIE Chinese tasks)."""
from __future__ import annotations

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
                       skipped: Optional[Counter] = None) -> List[TextExample]:
    columns, rows = read_tsv(path, layout.header, skipped, layout.n_columns)

    def index(column: Optional[Column]) -> Optional[int]:
        if column is None or isinstance(column, int):
            return column
        return column_index(columns, column, path)

    a, b, label, guid, qid = (index(c) for c in (layout.text_a, layout.text_b, layout.label,
                                                  layout.guid, layout.qid))
    examples = []
    for lineno, fields in rows:
        value = fields[label] if label is not None else None
        if value is not None and regression:
            try:
                value = float(value)
            except ValueError:
                raise DataError(f"{path}:{lineno}: score {value!r} is not a number") from None
        examples.append(TextExample(guid=fields[guid] if guid is not None else str(len(examples)),
                                    text_a=fields[a], text_b=fields[b] if b is not None else None,
                                    label=value, qid=fields[qid] if qid is not None else None))
    return examples
