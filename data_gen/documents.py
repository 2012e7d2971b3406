"""Corpus readers: documents of paragraphs of sentences, with bad records skipped and counted.

Formats (`format:` in a data config):
- `text`: BERT's format, one sentence a line, a blank line between documents; a line longer
  than `LONG_LINE_CHARS` is split into sentences.
- `jsonl`: one document a line, `{"title": ..., "text": ...}` (paragraphs separated by newlines,
  split into sentences here) or `{"sentences": [...]}`.
- `peoples_daily`: pre-segmented, POS-tagged Chinese, one paragraph a line of `word/pos` items
  (People's Daily 1998). The January 1998 file carries no article ids, so an article starts at a
  title line: one that does not end in sentence-final punctuation.
Lines are decoded strictly as UTF-8; control characters are removed (and counted).
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

from .sentences import split_sentences

LONG_LINE_CHARS = 2000
MAX_LINE_CHARS = 1_000_000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\ufeff]")
_ZH_SENTENCE_END = "。！？；!?;…"
# People's Daily items are `word/tag`; the tag follows the last slash (1/2/m is the word 1/2)
_ITEM = re.compile(r"(\S*)/([^\s/]*)(?!\S)")
_TAG = re.compile(r"/[^\s/]*(?:\s+|$)")
_SENTENCE_END = re.compile(rf"[{_ZH_SENTENCE_END}]/w(?!\S)")  # the last character of a word tagged w


@dataclass
class Sentence:
    text: str
    # Pre-segmented corpora: the sentence's `word/tag` items, separated by whitespace (parsed only
    # where the words are needed, in the worker processes); None for raw text.
    tagged: Optional[str] = None

    def words_and_tags(self) -> Tuple[List[str], List[str]]:
        """The words of a pre-segmented sentence and their part-of-speech tags ("" for none)."""
        pairs = _ITEM.findall(self.tagged or "")
        return [w for w, _ in pairs], [t for _, t in pairs]


@dataclass
class Document:
    doc_id: str  # "file:line" of its first line
    paragraphs: List[List[Sentence]] = field(default_factory=list)

    @property
    def sentences(self) -> List[Sentence]:
        return [s for p in self.paragraphs for s in p]


def _lines(path: Path, stats: Counter) -> Iterator[Tuple[int, str]]:
    """(line number, cleaned text) of every decodable line; bad lines are counted and skipped."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                stats["invalid_utf8_line"] += 1
                continue
            if len(line) > MAX_LINE_CHARS:
                stats["line_over_1M_chars_truncated"] += 1
                line = line[:MAX_LINE_CHARS]
            cleaned = _CONTROL.sub("", line)
            if cleaned != line:
                stats["control_characters_removed"] += 1
            yield lineno, unicodedata.normalize("NFC", cleaned)


def _finish(doc: Optional[Document], stats: Counter) -> Optional[Document]:
    if doc is None:
        return None
    doc.paragraphs = [p for p in doc.paragraphs if p]
    if not doc.paragraphs:
        stats["empty_document"] += 1
        return None
    return doc


def read_text(path: Path, lang: str, stats: Counter) -> Iterator[Document]:
    doc, previous_blank = None, False
    for lineno, line in _lines(path, stats):
        if not line.strip():
            if previous_blank:  # two separators in a row: an empty document between them
                stats["empty_document"] += 1
            done = _finish(doc, stats)
            if done:
                yield done
            doc, previous_blank = None, True
            continue
        previous_blank = False
        if doc is None:
            doc = Document(f"{path.name}:{lineno}", [[]])
        if len(line) > LONG_LINE_CHARS:
            stats["long_line_split"] += 1
            doc.paragraphs[0].extend(Sentence(s) for s in split_sentences(line, lang))
        else:
            doc.paragraphs[0].append(Sentence(line.strip()))
    done = _finish(doc, stats)
    if done:
        yield done


def read_jsonl(path: Path, lang: str, stats: Counter) -> Iterator[Document]:
    for lineno, line in _lines(path, stats):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            stats["malformed_json_line"] += 1
            continue
        doc = Document(f"{path.name}:{lineno}")
        if isinstance(record, dict) and isinstance(record.get("sentences"), list):
            doc.paragraphs = [[Sentence(s.strip()) for s in record["sentences"]
                               if isinstance(s, str) and s.strip()]]
        elif isinstance(record, dict) and isinstance(record.get("text"), str):
            doc.paragraphs = [[Sentence(s) for s in split_sentences(p, lang)]
                              for p in record["text"].split("\n")]
        else:
            stats["json_without_text_or_sentences"] += 1
            continue
        done = _finish(doc, stats)
        if done:
            yield done


def _tagged_sentences(line: str, stats: Counter) -> List[Sentence]:
    """A People's Daily paragraph cut after each sentence-final punctuation item (tag `w`); an
    item without a tag becomes a word tagged ""."""
    items = line.split()
    untagged = sum(1 for item in items if item.rfind("/") <= 0)  # no slash, or no word before it
    if untagged:
        stats["untagged_word"] += untagged
        line = "  ".join(item if item.rfind("/") > 0 else item + "/" for item in items)
    pieces, start = [], 0
    for end in _SENTENCE_END.finditer(line):
        pieces.append(line[start:end.end()].strip())
        start = end.end()
    pieces.append(line[start:].strip())
    return [Sentence(_TAG.sub("", p), p) for p in pieces if p]


def read_peoples_daily(path: Path, lang: str, stats: Counter) -> Iterator[Document]:
    doc = None
    for lineno, line in _lines(path, stats):
        sentences = _tagged_sentences(line, stats)
        if not sentences:
            continue
        last_word = sentences[-1].tagged.rsplit(None, 1)[-1].rpartition("/")[0]
        is_title = last_word[-1] not in _ZH_SENTENCE_END and last_word[-1] not in "”」）)"
        if is_title or doc is None:
            done = _finish(doc, stats)
            if done:
                yield done
            doc = Document(f"{path.name}:{lineno}")
        doc.paragraphs.append(sentences)
    done = _finish(doc, stats)
    if done:
        yield done


READERS = {"text": read_text, "jsonl": read_jsonl, "peoples_daily": read_peoples_daily}


def read_documents(paths, fmt: str, lang: str, stats: Counter) -> Iterator[Document]:
    if fmt not in READERS:
        raise ValueError(f"unknown corpus format {fmt!r}; expected one of {sorted(READERS)}")
    for path in paths:
        yield from READERS[fmt](Path(path), lang, stats)


@dataclass(frozen=True)
class Click:
    query: str
    title: str
    clicks: int
    impressions: int


def read_click_log(path: Path, stats: Counter) -> List[Click]:
    """`query<TAB>title<TAB>clicks<TAB>impressions`, integers >= 0, clicks <= impressions."""
    records = []
    for lineno, line in _lines(Path(path), stats):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            if len(fields) != 4:
                raise ValueError
            query, title = fields[0].strip(), fields[1].strip()
            clicks, impressions = int(fields[2]), int(fields[3])
            if not query or not title or clicks < 0 or impressions < clicks:
                raise ValueError
        except ValueError:
            stats["malformed_click_log_line"] += 1
            continue
        records.append(Click(query, title, clicks, impressions))
    return records
