"""Reading the TSV files of GLUE, CLUE and the original ERNIE fine-tuning data.

Quoting is off (GLUE's files contain bare quotes); every row must have the header's number of
columns. A row that does not is an error naming file and line, or, where the caller allows it
(a training file: QQP's train.tsv has a few broken rows), skipped and counted.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

from ernie.finetune.examples import DataError

Row = Tuple[int, List[str]]


def read_lines(path) -> List[str]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 ({err.reason} at byte {err.start})") from None
    return text.replace("\r\n", "\n").split("\n")


def read_tsv(path, header: bool, skipped: Optional[Counter] = None,
             n_columns: Optional[int] = None) -> Tuple[Optional[List[str]], Iterator[Row]]:
    """(header columns or None, rows as (line number, fields)). Rows whose column count differs
    from the header's (or `n_columns`) raise DataError, or are counted in `skipped` under
    "<file>: wrong column count" when a counter is given."""
    lines = read_lines(path)
    columns = lines[0].split("\t") if header else None
    width = len(columns) if columns else n_columns

    def rows() -> Iterator[Row]:
        for lineno, line in enumerate(lines[1:] if header else lines, 2 if header else 1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if width is not None and len(fields) != width:
                if skipped is None:
                    raise DataError(f"{path}:{lineno}: expected {width} tab-separated columns, "
                                    f"found {len(fields)}")
                skipped[f"{Path(path).name}: wrong column count"] += 1
                continue
            yield lineno, fields

    return columns, rows()


def column_index(columns: Sequence[str], name: str, path) -> int:
    try:
        return list(columns).index(name)
    except ValueError:
        raise DataError(f"{path}:1: header has no column {name!r} (columns: {list(columns)})") from None
