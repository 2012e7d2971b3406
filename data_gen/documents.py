"""Corpus readers: documents of paragraphs of sentences, with bad records skipped and counted.

Formats (`format:` in a data config):
- `text`: plain text, laid out as `layout:` says (below).
- `jsonl`: one document a line, `{"text": ...}` (the text under `text_field:`, laid out as
  `layout:` says, by default a line a paragraph) or `{"sentences": [...]}`. A text_field none of
  a file's first records has is an error naming the fields they have; so is a file holding one
  JSON array, which is refused rather than parsed whole into memory (`jq -c '.[]'` makes it jsonl).
- `parquet`: one document a row, its text in the column `text_field:` (read with pyarrow), laid
  out as a jsonl record's.
- `tsv`: the fine-tuning files' format (GLUE, CLUE, original ERNIE; what `data_gen fetch` writes):
  a header row naming the columns, one document a row, its text in the column `text_field:`
  (default `text_a`) and, beside `text_a`, a `text_b` column's as a second paragraph; labels are
  not read. A data config's `labelled_texts:` reads a task's training split this way.
- `peoples_daily`: pre-segmented, POS-tagged Chinese, one paragraph a line of `word/pos` items
  (People's Daily 1998). The January 1998 file carries no article ids, so an article starts at a
  title line: one that does not end in sentence-final punctuation.

Layouts (`layout:`) of a text file, or of a record's text:
- `sentence_per_line`: BERT's, one sentence a line, a blank line between documents; a line longer
  than `LONG_LINE_CHARS` is split into sentences. The default of `text`.
- `paragraphs`: a blank line ends a paragraph; its lines are joined (`sentences.join_lines`: a
  space in English, nothing between Chinese characters) and split into sentences.
- `paragraph_per_line`: each line a paragraph, split into sentences. The default of records.
In the two paragraph layouts a file (a record) is one document. In every layout a line in which
`document_separator:` (a regular expression) is found starts a new document, and is not text (such
lines are counted, so that a pattern that also matches text shows in the report).

Files ending in .gz, .bz2, .xz or .zst are decompressed as they are read; one that is truncated or
corrupt is an error naming it and the line (CorpusError). Lines are decoded strictly in the
config's `encoding:` (UTF-8 unless set): a line that does not decode is an error naming file, line
and byte offset, or, with `on_decode_error: skip`, skipped and counted. A byte-order mark opening a
file is dropped; control characters are removed (and counted); a file whose lines end in a lone CR
(classic Mac OS) is read with CR as the line end. A line is read at most `4 * MAX_LINE_CHARS` bytes
at a time, never held whole, and one longer than MAX_LINE_CHARS characters is read as consecutive
lines of at most that many, cut between words (counted): nothing of it is lost.
`layout_warning` guesses from a text's first lines whether the layout it is read with fits it.

What a folder or glob pattern in `input:` finds is filtered (`expand_inputs`): hidden files and
folders are not read (and are noted); symlinks are followed, each folder entered once (a symlink loop ends there);
a README, an archive, an image or a file whose first bytes hold NULs is skipped and noted. A file
named on its own is read whatever its name, but one that is not text is an error.
"""
from __future__ import annotations

import bz2
import codecs
import fnmatch
import functools
import glob
import gzip
import io
import json
import lzma
import os
import re
import sys
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from types import MappingProxyType
from typing import IO, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Pattern, Sequence, Set, Tuple, Union

from .sentences import join_lines, split_sentences

LONG_LINE_CHARS = 2000
MAX_LINE_CHARS = 1_000_000
# A document is cut (and counted) past this much text: a corpus read as one document per file,
# a dump of many articles without a document_separator, would otherwise be held whole in memory.
MAX_DOCUMENT_CHARS = 10_000_000
# A jsonl record is a line of at most this many bytes (a document's worth of UTF-8); a longer one
# is skipped (counted) without being held whole in memory.
MAX_RECORD_BYTES = 4 * MAX_DOCUMENT_CHARS
FIELD_CHECK_RECORDS = 100   # a jsonl file none of whose first records has text_field is an error
SNIFF_BYTES = 8192          # a file's first bytes, in which NULs mean it is not text
LINE_END_SNIFF_BYTES = 1 << 20  # ... and in which its line ends are told (a first line may be long)
ARCHIVES = (".zip", ".tar", ".tgz", ".tbz", ".tbz2", ".txz", ".7z", ".rar")
NOT_TEXT = (".pdf", ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ico", ".svg")
# characters that separate words, lines or pages (a lone CR, vertical tab, form feed, the
# information separators, NEL, the line and paragraph separators): a space each, not nothing
_SEPARATOR = re.compile(r"[\x0b-\x0d\x1c-\x1f\x85\u2028\u2029]")
_LONE_CR = re.compile(rb"\r(?!\n)")  # a CR with no LF after it
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u200b-\u200f\u202a-\u202e\ufeff\ud800-\udfff]")
_ZH_SENTENCE_END = "。！？；!?;…"
# People's Daily items are `word/tag`; the tag follows the last slash (1/2/m is the word 1/2)
_ITEM = re.compile(r"(\S*)/([^\s/]*)(?!\S)")
_TAG = re.compile(r"/[^\s/]*(?:\s+|$)")
_SENTENCE_END = re.compile(rf"[{_ZH_SENTENCE_END}]/w(?!\S)")  # the last character of a word tagged w

SENTENCE_PER_LINE, PARAGRAPHS, PARAGRAPH_PER_LINE = "sentence_per_line", "paragraphs", "paragraph_per_line"
LAYOUTS = (SENTENCE_PER_LINE, PARAGRAPHS, PARAGRAPH_PER_LINE)
DEFAULT_LAYOUT = {"text": SENTENCE_PER_LINE, "jsonl": PARAGRAPH_PER_LINE, "parquet": PARAGRAPH_PER_LINE,
                  "tsv": PARAGRAPH_PER_LINE}
DEFAULT_TEXT_FIELD = {"jsonl": "text", "parquet": "text", "tsv": "text_a"}
COMPRESSIONS = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd"}


class CorpusError(ValueError):
    """An input that cannot be read at all: named with what is wrong and where."""


@dataclass(frozen=True)
class Decoding:
    """How a file's bytes become text: its encoding, and whether a line that does not decode is
    skipped (counted) rather than an error. The default is an error: an undecodable line most
    often means the whole file is in another encoding, which skipping would quietly halve.
    `remedy`: what that error advises (for the corpus, the data config's keys that read it)."""
    encoding: str = "utf-8"
    skip_errors: bool = False
    remedy: str = ("set encoding: to the files' (latin-1, cp1252, gb18030, ...), or on_decode_error: skip "
                   "to skip such lines")

    @classmethod
    def of(cls, encoding: str = "utf-8", on_decode_error: str = "error") -> "Decoding":
        """ValueError names an encoding Python does not know, one whose newline is not the byte
        0x0a (lines are split as bytes: UTF-16 and UTF-32 are not), or a policy not error/skip."""
        try:
            newline = "\n".encode(encoding)
        except LookupError:
            raise ValueError(f"encoding {encoding!r} is not a text encoding Python knows "
                             "(utf-8, latin-1, cp1252, gb18030, ...)") from None
        if newline != b"\n":
            raise ValueError(f"encoding {encoding}: files are read line by line as bytes, which {encoding} "
                             f"does not allow: convert them to UTF-8 (iconv -f {encoding} -t utf-8)")
        if on_decode_error not in ("error", "skip"):
            raise ValueError(f"on_decode_error must be error or skip, got {on_decode_error!r}")
        return cls(encoding, on_decode_error == "skip")


# A file a config names beside the corpus (stop words, a task's list): UTF-8, whatever the corpus's
# `encoding:`, which reads the corpus only.
SIDE_FILE = Decoding(remedy="convert it to UTF-8 (e.g. iconv -f latin-1 -t utf-8)")


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


@dataclass(frozen=True)
class Reading:
    """How a corpus's files are read: the data config's format, lang, layout,
    document_separator (compiled) and text_field, the format's defaults filled in."""
    format: str
    lang: str
    layout: Optional[str] = None             # None for peoples_daily, which has its own
    separator: Optional[Pattern] = None
    text_field: Optional[str] = None         # jsonl's, parquet's and tsv's
    decoding: Decoding = Decoding()

    @classmethod
    def of(cls, fmt: str, lang: str, layout: Optional[str] = None, document_separator: Optional[str] = None,
           text_field: Optional[str] = None, encoding: str = "utf-8", on_decode_error: str = "error") -> "Reading":
        """ValueError names a setting that is unknown, that the format does not take, or a
        separator that is not a regular expression (or an encoding `Decoding.of` refuses)."""
        if fmt not in READERS:
            raise ValueError(f"format must be one of {sorted(READERS)}, got {fmt!r}")
        decoding = Decoding.of(encoding, on_decode_error)
        if fmt == "parquet" and codecs.lookup(encoding).name != "utf-8":
            raise ValueError(f"encoding {encoding}: parquet holds its text as UTF-8; encoding is for text, "
                             "jsonl and peoples_daily files")
        if fmt == "peoples_daily":
            given = [k for k, v in (("layout", layout), ("document_separator", document_separator),
                                    ("text_field", text_field)) if v is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: not for format peoples_daily, which reads a paragraph a "
                                 "line of word/pos items and starts an article at a title line")
            return cls(fmt, lang, decoding=decoding)
        if fmt == "text" and text_field is not None:
            raise ValueError("text_field is for jsonl, parquet and tsv input: the key or column that holds the text")
        layout = layout or DEFAULT_LAYOUT[fmt]
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        try:
            separator = re.compile(document_separator) if document_separator else None
        except re.error as err:
            raise ValueError(f"document_separator {document_separator!r} is not a valid regular expression: "
                             f"{err}") from None
        return cls(fmt, lang, layout, separator, text_field or DEFAULT_TEXT_FIELD.get(fmt), decoding)

    def is_separator(self, line: str) -> bool:
        return self.separator is not None and bool(line.strip()) and self.separator.search(line) is not None


# ---- input files -------------------------------------------------------------------------------

Skipped = List[Tuple[str, str]]  # (path, why) of what a folder or pattern found and is not read


def _walk(folder: Path, skipped: Skipped, enter: Callable[[Tuple[str, ...]], bool] = lambda parts: True,
          leave_out: Mapping[str, str] = MappingProxyType({})) -> Iterator[Tuple[Path, Tuple[str, ...], Optional[str]]]:
    """(path, its parts under `folder`, why it is not read or None) of every file under a folder
    and of what is there but is not a file (a broken symlink, a fifo), in sorted order (of path
    parts); symlinks followed, hidden entries (a name starting with a dot) noted and left out, and
    so are the files and folders `leave_out` names (by real path, with why). A folder is entered
    once: a symlink back to a folder above it (a loop) or a second path to a folder is noted in
    `skipped`. A subfolder is entered only where `enter(its parts)`."""
    entered: Dict[Tuple[int, int], Path] = {}

    def walk(at: Path, parts: Tuple[str, ...]):
        stat = at.stat()
        first = entered.setdefault((stat.st_dev, stat.st_ino), at)
        if first != at:
            skipped.append((_shown(str(at)), f"a symlink loop back to {_shown(str(first))}" if at.is_relative_to(first)
                            else f"the same folder as {_shown(str(first))}, read there"))
            return
        try:
            entries = sorted(os.scandir(at), key=lambda e: e.name)
        except OSError as err:
            raise CorpusError(f"input: cannot list folder {at} ({err.strerror or err})") from None
        for entry in entries:
            path, below = at / entry.name, parts + (entry.name,)
            if entry.name.startswith("."):  # .git, .DS_Store: noted, so that no file goes unseen
                yield path, below, ("a hidden folder, not entered" if entry.is_dir() else
                                    "hidden (its name starts with a dot): name it in input: to read it")
                continue
            if leave_out and os.path.realpath(path) in leave_out:
                yield path, below, leave_out[os.path.realpath(path)]
            elif entry.is_dir():
                if enter(below):
                    yield from walk(path, below)
            elif entry.is_file():
                yield path, below, None
            else:
                yield path, below, "a broken symlink" if entry.is_symlink() else "not a regular file"

    return walk(folder, ())


def _not_utf8(name: str) -> bool:
    """Whether a path from the system is not UTF-8 (its bytes came as surrogates): no report or
    manifest can hold it as it is."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _shown(path: str) -> str:
    """A path as a report can print it: bytes that are not UTF-8 as escapes (`caf\\xe9.txt`)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace") if _not_utf8(path) else path


def _matches(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    """Whether path parts match a glob pattern's, part by part; `**` matches any number of parts."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_matches(pattern[1:], parts[k:]) for k in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _matches(pattern[1:], parts[1:])


def _glob(pattern: str, skipped: Skipped, leave_out: Mapping[str, str]) -> Iterator[Tuple[Path, Optional[str]]]:
    """(path, why it is not read or None) of what a glob pattern matches and what lies under the
    folders it matches, in sorted order: what `glob.glob(pattern, recursive=True)` finds, found by
    `_walk`, since glob's `**` follows a symlink loop round and round."""
    parts = Path(pattern).parts
    fixed = next(k for k, part in enumerate(parts) if glob.has_magic(part))
    root, rest = Path(*parts[:fixed]), parts[fixed:]
    if not root.is_dir():
        return

    def enter(below: Tuple[str, ...]) -> bool:
        """Without `**` a part matches a part: whether a folder can lead to a match, or lies in one."""
        return "**" in rest or _matches(rest[:len(below)], below[:len(rest)])

    for path, below, why in _walk(root, skipped, enter, leave_out):
        if any(_matches(rest, below[:k]) for k in range(1, len(below) + 1)):
            yield path, why


def _head(path: Path, size: int = SNIFF_BYTES) -> Optional[bytes]:
    """A file's first `size` bytes (decompressed), or None when they cannot be read: the
    reader then names what is wrong, and where."""
    errors = read_errors(path)
    try:
        with open_input(path) as f:
            return f.read(size)
    except errors:
        return None


def not_corpus(path: Path, fmt: Optional[str], found: bool) -> Optional[str]:
    """Why a file is not corpus text, or None: an archive, an image or a PDF by its name, a
    binary file by NULs in its first bytes (parquet aside), and, of the files a folder or pattern
    `found`, a README (a file named on its own is read whatever its name). Text in UTF-16 or
    UTF-32 (a byte-order mark) is an error: it is corpus, in an encoding read only once converted."""
    suffixes = [s.lower() for s in path.suffixes]
    if found and path.name.lower().startswith("readme"):
        return "a README, most likely not corpus text (name it in input: to read it)"
    if ".tar" in suffixes or path.suffix.lower() in ARCHIVES:
        kind = "".join(suffixes[suffixes.index(".tar"):]) if ".tar" in suffixes else path.suffix.lower()
        return f"an archive ({kind}): unpack it to read its files"
    if path.suffix.lower() in NOT_TEXT:
        return f"not text ({path.suffix.lower()})"
    named = format_by_name(path)
    if named and fmt and named != fmt and fmt != "parquet":  # (the parquet reader names a file that is not parquet)
        return (f"a {named} file by its name, not read with format: {fmt} (its records would be read as "
                f"{fmt}): set format: {named}, or rename the file if it is {fmt}")
    head = _head(path) if fmt != "parquet" else None
    if head and head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise CorpusError(f"{path}: UTF-16 or UTF-32 text (it opens with the byte-order mark {head[:2].hex(' ')}): "
                          "convert it to UTF-8, e.g. iconv -f UTF-16 -t UTF-8")
    if head and b"\0" in head:
        order = _utf16_without_mark(head)
        if order:
            raise CorpusError(f"{path}: UTF-16 text without a byte-order mark (every other byte of its first "
                              f"{len(head)} is NUL): convert it to UTF-8, e.g. iconv -f {order} -t UTF-8")
        return "not text (it holds NUL bytes)"
    return None


def format_by_name(path: Path) -> Optional[str]:
    """The format a file's name gives (`c.jsonl.gz`: jsonl), where it is one of the structured
    ones; None for text and for names that say nothing."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes.pop()
    return {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet",
            ".tsv": "tsv"}.get(suffixes[-1] if suffixes else "")


def _utf16_without_mark(head: bytes) -> Optional[str]:
    """UTF-16LE or UTF-16BE where a file's first bytes look like text in it without a byte-order
    mark (the NUL halves of ASCII and Latin characters at every other byte, never between), or None."""
    even, odd = head[0::2], head[1::2]
    for order, zeros, other in (("UTF-16LE", odd, even), ("UTF-16BE", even, odd)):
        if len(zeros) >= 8 and zeros.count(0) >= 0.9 * len(zeros) and other.count(0) == 0:
            return order
    return None


def expand_inputs(entries: Sequence[str], fmt: str = "text", skipped: Optional[Skipped] = None,
                  leave_out: Mapping[str, str] = MappingProxyType({})) -> List[str]:
    """The files that `input:` entries name, in order: a file as it is; a folder, every file under
    it in sorted order; a glob pattern (`*`, `?`, `[...]`; `**` reaches into subfolders), the files
    and folders it matches in sorted order. A file named twice is read once (and, reached by another
    path, a symlink, noted with the skipped files). What a folder or
    pattern finds that is not corpus (`_walk`, `not_corpus`), and what `leave_out` names (real
    path -> why: a data config's vocabulary beside its text, its output folder inside the input
    folder), is left out and added to `skipped` as (path, why); a file named on its own that is
    not text (`not_corpus`) is an error."""
    if not entries:
        raise CorpusError("input: no file, folder or pattern given")
    skipped = [] if skipped is None else skipped
    files, seen, noted = [], {}, set(skipped)  # seen: a file's real path -> the path read
    for entry in entries:
        path = Path(entry)
        if path.is_file() and os.path.realpath(path) in leave_out:
            skipped.append((entry, leave_out[os.path.realpath(path)]))
            noted.add(skipped[-1])
            continue
        if path.is_file():
            why = not_corpus(path, fmt, found=False)
            if why:
                raise CorpusError(f"input: {entry} is {why}")
            found = [path]
        elif path.is_dir() or glob.has_magic(entry):
            found, left_out = [], []
            walked = ((f, why) for f, _, why in _walk(path, left_out, leave_out=leave_out)) if path.is_dir() \
                else _glob(entry, left_out, leave_out)
            for f, why in walked:
                why = why or not_corpus(f, fmt, found=True)
                if why:
                    left_out.append((_shown(str(f)), why))
                else:
                    found.append(f)
            if not found:
                what = f"folder {entry} holds no files" if path.is_dir() else f"no file matches {entry}"
                raise CorpusError(f"input: {what}" + (f" to read (skipped: {describe_skipped(left_out)})"
                                                      if left_out else ""))
            skipped.extend(w for w in left_out if w not in noted)
            noted.update(left_out)
        else:
            raise CorpusError(f"file not found: {entry}")
        for f in found:
            if _not_utf8(str(f)):
                raise CorpusError(f"input: {_shown(str(f))}: its name is not UTF-8: rename it (e.g. convmv -f latin1 "
                                  f"-t utf8 --notest), or move it out of the input")
            key = os.path.realpath(f)
            if key not in seen:
                seen[key] = str(f)
                files.append(str(f))
            elif seen[key] != str(f) and (str(f), f"the same file as {seen[key]} (read once)") not in noted:
                skipped.append((str(f), f"the same file as {seen[key]} (read once)"))  # a link, or two paths to it
                noted.add(skipped[-1])
    return files


def describe_skipped(skipped: Skipped, shown: int = 3) -> str:
    """The first `shown` skipped inputs with why, in a line."""
    text = "; ".join(f"{path}: {why}" for path, why in skipped[:shown])
    return text + (f"; and {len(skipped) - shown} more" if len(skipped) > shown else "")


def open_input(path: Path) -> IO[bytes]:
    """A file's bytes, decompressed where its name ends in .gz, .bz2, .xz or .zst."""
    kind = COMPRESSIONS.get(path.suffix.lower())
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind == "bzip2":
        return io.BufferedReader(_StreamsReader(path, bz2.BZ2Decompressor))
    if kind == "xz":
        return io.BufferedReader(_StreamsReader(path, lzma.LZMADecompressor))
    if kind == "zstd":
        import zstandard  # imported only for .zst input
        return io.BufferedReader(_StreamsReader(path, zstandard.ZstdDecompressor().decompressobj))
    return open(path, "rb")


class _StreamsReader(io.RawIOBase):
    """A compressed file's bytes, stream after stream (pbzip2 and lbzip2 write one a block, zstd
    frames, concatenated xz files), NUL padding between them skipped; EOFError where the file ends
    inside a stream, the decompressor's error where one is corrupt. The standard library's bz2
    and lzma readers take a corrupt stream after the first for trailing junk and stop there
    without a word; zstandard's reader returns a truncated frame's bytes as if complete."""

    def __init__(self, path: Path, new_stream):
        self._file, self._new = open(path, "rb"), new_stream
        self._stream, self._in_stream = None, False
        self._out, self._at = b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._at == len(self._out):
            data = self._file.read(1 << 18)
            if not data:
                if self._in_stream:
                    raise EOFError
                return 0
            out = []
            while data:
                if not self._in_stream:
                    data = data.lstrip(b"\0")  # no stream format starts with a NUL byte
                    if not data:
                        break
                    self._stream, self._in_stream = self._new(), True
                out.append(self._stream.decompress(data))
                data = b""
                if self._stream.eof:  # the next stream starts in what this one left
                    data, self._in_stream = self._stream.unused_data, False
            self._out, self._at = b"".join(out), 0
        n = min(len(buffer), len(self._out) - self._at)
        buffer[:n] = self._out[self._at:self._at + n]
        self._at += n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


def read_errors(path: Path) -> tuple:
    """What reading a file of this kind raises when its bytes are truncated or corrupt."""
    errors = (OSError, EOFError, zlib.error, lzma.LZMAError)
    if path.suffix.lower() == ".zst":
        import zstandard
        errors += (zstandard.ZstdError,)
    return errors


def _unreadable(path: Path, where: str, err: Exception) -> CorpusError:
    kind = COMPRESSIONS.get(path.suffix.lower())
    what = "the compressed data ends early" if isinstance(err, EOFError) else str(err) or type(err).__name__
    hint = f": a truncated or corrupt {kind} file" if kind else ""
    return CorpusError(f"{path}: cannot read {where} ({what}){hint}")


def _undecodable(path: Path, lineno: int, offset: int, byte: int, decoding: Decoding) -> CorpusError:
    where = f"byte {offset:,}" + (" of its decompressed text" if path.suffix.lower() in COMPRESSIONS else "")
    return CorpusError(f"{path}: line {lineno}, {where} (0x{byte:02x}): not {decoding.encoding} text: {decoding.remedy}")


def _rest_of_line(f: IO[bytes], limit: int) -> int:
    """Reads past the rest of a line cut at `limit` bytes, `limit` bytes at a time: the bytes read."""
    n = 0
    while True:
        piece = f.readline(limit)
        n += len(piece)
        if not piece or piece.endswith(b"\n"):
            return n


def _cr_line_ends(head: bytes, records: bool) -> bool:
    """Whether a file's first bytes say its lines end in a lone CR (classic Mac OS). Text: lone
    CRs outnumber LFs four to one (a Mac file with an LF at its end, or a short Unix tail, still
    is; a Unix file with a few stray CRs a line is not). Records (jsonl, tsv), whose strings may
    hold raw CRs: only where no LF is there at all. (A CRLF end cut off by the head's end is not
    lone.)"""
    lone = len(_LONE_CR.findall(head)) - head.endswith(b"\r")  # (a CR ending the head may be half a CRLF)
    return lone > 0 and head.count(b"\n") == 0 if records else lone > 4 * head.count(b"\n")


def _decoded_lines(path: Path, decoding: Decoding, stats: Counter, limit: int,
                   records: bool = False) -> Iterator[Tuple[int, str, bool]]:
    """(line number, text, whether more of the line follows) of every line of a file: a line
    longer than `limit` bytes comes in pieces of at most `limit` bytes, one after another, decoded
    as one (a character split between two pieces is whole in the second), never held whole. The
    byte-order mark opening the file is dropped. A file whose lines end in a lone CR (classic Mac
    OS), which its first megabyte tells (`_cr_line_ends`; `records`: a jsonl or tsv file's), is
    read with CR, CRLF and LF as line ends (counted). A line that does
    not decode is an error naming the file, line and byte, or with `decoding.skip_errors` skipped
    and counted (of a line in pieces, from the piece that does not decode on)."""
    path = Path(path)
    errors = read_errors(path)
    try:
        f = open_input(path)
    except OSError as err:
        raise CorpusError(f"{path}: cannot open it ({err.strerror or err})") from None
    head = _head(path, LINE_END_SNIFF_BYTES) or b""
    if _cr_line_ends(head, records):
        stats["file_of_cr_line_ends"] += 1
        f = io.BufferedReader(_CrAsNewline(f))
    with f:
        lineno, offset, decoder = 0, 0, None  # offset: of the piece's first byte; decoder: of a line in pieces
        held_cr = False  # a piece ended in CR: half of a CRLF end if the next piece is the LF, else text
        while True:
            try:
                raw = f.readline(limit)
            except errors as err:
                raise _unreadable(path, f"line {lineno + (decoder is None)}", err) from None
            more = len(raw) == limit and not raw.endswith(b"\n")
            if decoder is None:
                if not raw:
                    return
                lineno, start = lineno + 1, offset
                if more:
                    decoder = codecs.getincrementaldecoder(decoding.encoding)()
            try:
                line = raw.decode(decoding.encoding) if decoder is None else decoder.decode(raw, final=not more)
            except UnicodeDecodeError as err:
                if not decoding.skip_errors:
                    at = offset + err.start - (len(err.object) - len(raw))  # the decoder's held bytes come first
                    raise _undecodable(path, lineno, at, err.object[err.start], decoding) from None
                stats["undecodable_line"] += 1
                kept = decoder is not None and offset > start  # pieces of it came before this one
                lost = len(raw)
                if more:  # the rest of the line is skipped with it
                    try:
                        lost += _rest_of_line(f, limit)
                    except errors as err:
                        raise _unreadable(path, f"line {lineno}", err) from None
                    offset += lost - len(raw)
                stats["undecodable_line_bytes"] += lost  # a line may be megabytes: what went, not just how many
                if kept:  # they stay: the line ends here
                    yield lineno, "", False
                decoder, held_cr = None, False
            else:
                if held_cr and not line.startswith("\n"):
                    line = "\r" + line  # a CR inside the line: as it would be read unsplit
                held_cr = more and line.endswith("\r")
                if held_cr:
                    line = line[:-1]
                if not more:
                    line, decoder = line.rstrip("\r\n"), None
                yield lineno, line.removeprefix("\ufeff") if lineno == 1 and offset == 0 else line, more
            offset += len(raw)


class _CrAsNewline(io.RawIOBase):
    """A file's bytes with each line end made LF: a lone CR, and CRLF too where one is found among
    them, a CR at the end of one read held until the next shows which. (CR is the byte 0x0d in
    every encoding a corpus may be in: those whose newline is 0x0a.)"""

    def __init__(self, f: IO[bytes]):
        self._file, self._cr = f, False  # _cr: a CR held back from the last read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            raw = self._file.read(max(1, len(buffer) - 1))  # room for the CR held back
            if not raw:
                data, self._cr = b"\r" if self._cr else b"", False
            else:
                data = (b"\r" if self._cr else b"") + raw
                self._cr = data.endswith(b"\r")
                data = data[:-1] if self._cr else data
            if data or not raw:
                data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                buffer[:len(data)] = data
                return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


def _piece_end(text: str) -> int:
    """Where to cut a piece of a long line: after its last space or Chinese sentence end, if one is in
    its second half (words and sentences stay whole), else at its end."""
    at = max(text.rfind(" "), *(text.rfind(c) for c in _ZH_SENTENCE_END)) + 1
    return at if at > len(text) // 2 else len(text)


def _short_lines(lines: Iterable[Tuple[int, str, bool]], stats: Counter) -> Iterator[Tuple[int, str]]:
    """(line number, text) with every line of more than MAX_LINE_CHARS characters (or read in pieces:
    `more`) made consecutive lines of at most that many, cut between words where it can (counted):
    later steps hold and split a line at once, a line however long loses nothing."""
    carry, split = "", False
    for lineno, text, more in lines:
        text = carry + text
        while len(text) > MAX_LINE_CHARS:
            cut, split = _piece_end(text[:MAX_LINE_CHARS]), True
            yield lineno, text[:cut]
            text = text[cut:]
        if more:  # the line goes on: its last words wait for the rest
            carry = text
            continue
        if split:
            stats["line_over_1M_chars_split"] += 1
        yield lineno, text
        carry, split = "", False


def _clean(line: str, stats: Counter) -> str:
    """A line with separators made spaces and other control characters (and the lone surrogates a
    JSON string can hold) removed, NFC-normalised (counted). So are the characters BERT's
    normaliser (`clean_text`) would delete without a trace, each count by kind: the other format,
    private-use and unassigned characters, and U+FFFD, the mark of text damaged before it
    reached the corpus."""
    spaced = _SEPARATOR.sub(" ", line)
    if spaced != line:
        stats["separators_made_spaces"] += 1
    cleaned = _CONTROL.sub("", spaced)
    if cleaned != spaced:
        stats["control_characters_removed"] += 1
    if not cleaned.isprintable():  # a space other than ' ' also makes it False: the search says
        kept = _other_characters().sub("", cleaned)
        if kept != cleaned:
            stats["format_private_or_unassigned_characters_removed"] += 1
        cleaned = kept
    if "\ufffd" in cleaned:
        stats["replacement_characters_removed"] += 1
        cleaned = cleaned.replace("\ufffd", "")
    return unicodedata.normalize("NFC", cleaned)


@functools.lru_cache(maxsize=None)
def _other_characters() -> Pattern:
    """Unicode's "other" characters (general category C: control, format, surrogate, private use,
    unassigned) but the tab, which BERT's tokenizer deletes; built once a process, on its first
    line that holds a character that is not printable."""
    ranges, first = [], None
    for code in range(sys.maxunicode + 2):
        other = code <= sys.maxunicode and code != 9 and unicodedata.category(chr(code))[0] == "C"
        if other and first is None:
            first = code
        elif not other and first is not None:
            ranges.append(f"{re.escape(chr(first))}-{re.escape(chr(code - 1))}")
            first = None
    return re.compile(f"[{''.join(ranges)}]")


def clean_lines(path: Path, stats: Counter, decoding: Decoding = Decoding()) -> Iterator[Tuple[int, str]]:
    """(line number, cleaned text) of every line of a file; a line is read at most
    4 * MAX_LINE_CHARS bytes at a time (`_decoded_lines`), made lines of at most MAX_LINE_CHARS
    characters (`_short_lines`), then cleaned (`_clean`)."""
    return _cleaned(_short_lines(_decoded_lines(path, decoding, stats, 4 * MAX_LINE_CHARS), stats), stats)


def _cleaned(lines: Iterable[Tuple[int, str]], stats: Counter) -> Iterator[Tuple[int, str]]:
    """The lines cleaned (`_clean`), but for a line that held only characters cleaning removes (a
    zero-width space, a control character): left out, counted, and not taken for the blank line
    that ends a paragraph or a document."""
    for lineno, line in lines:
        cleaned = _clean(line, stats)
        if line.strip() and not cleaned.strip():
            stats["line_of_removed_characters_only"] += 1
            continue
        yield lineno, cleaned


def load_stopwords(path: Optional[str]) -> Set[str]:
    """The stop words of a file, one a line, lower-cased; read as a corpus's lines are cleaned, and
    a line that is not UTF-8 is an error naming the file, line and byte (CorpusError)."""
    if not path:
        return set()
    return {line.strip().lower() for _, line in clean_lines(Path(path), Counter(), SIDE_FILE) if line.strip()}


# ---- layouts -----------------------------------------------------------------------------------

def _finish(doc: Optional[Document], stats: Counter) -> Optional[Document]:
    if doc is None:
        return None
    doc.paragraphs = [p for p in doc.paragraphs if p]
    if not doc.paragraphs:
        stats["empty_document"] += 1
        return None
    return doc


class _Documents:
    """The documents of one text (a file, a record) as its lines come: the document being read and
    the lines of its open paragraph (layout `paragraphs`)."""

    def __init__(self, name: str, how: Reading, stats: Counter):
        self.name, self.how, self.stats = name, how, stats
        self.doc: Optional[Document] = None
        self.chars = 0                  # text in self.doc
        self.lines: List[str] = []      # the open paragraph's
        self.line_chars = 0

    def start(self, lineno: int) -> None:
        if self.doc is None:
            self.doc, self.chars = Document(f"{self.name}:{lineno}"), 0

    def add(self, sentences: List[Sentence], new_paragraph: bool) -> Optional[Document]:
        """Adds sentences to the document, as a paragraph of their own or to its last one; the
        document when that made it too long to go on."""
        if new_paragraph or not self.doc.paragraphs:
            self.doc.paragraphs.append([])
        self.doc.paragraphs[-1].extend(sentences)
        self.chars += sum(len(s.text) for s in sentences)
        if self.chars > MAX_DOCUMENT_CHARS:
            self.stats["document_over_10M_chars_cut"] += 1
            return self.end_document()
        return None

    def add_line(self, line: str) -> Optional[Document]:
        """A line of the open paragraph (layout `paragraphs`)."""
        self.lines.append(line)
        self.line_chars += len(line)
        if self.line_chars > MAX_LINE_CHARS:
            self.stats["paragraph_over_1M_chars_cut"] += 1
            return self.end_paragraph()
        return None

    def end_paragraph(self) -> Optional[Document]:
        if not self.lines:
            return None
        text = join_lines(self.lines, self.how.lang)
        self.lines, self.line_chars = [], 0
        return self.add([Sentence(s) for s in split_sentences(text, self.how.lang)], new_paragraph=True)

    def end_document(self) -> Optional[Document]:
        done = self.end_paragraph()
        if done is not None:  # the open paragraph filled the document: it was ended with it
            return done
        done, self.doc = _finish(self.doc, self.stats), None
        return done


def _documents(name: str, lines: Iterable[Tuple[int, str]], how: Reading, stats: Counter) -> Iterator[Document]:
    """The documents of a text's (line number, cleaned line)s, as `how.layout` lays them out."""
    reader = _Documents(name, how, stats)
    previous_blank = False  # sentence_per_line: two blank lines in a row hold an empty document
    for lineno, line in lines:
        if how.is_separator(line):
            stats["document_separator_lines"] += 1
            done = reader.end_document()
        elif not line.strip():
            done = None
            if how.layout == SENTENCE_PER_LINE:
                if previous_blank:
                    stats["empty_document"] += 1
                done, previous_blank = reader.end_document(), True
            elif how.layout == PARAGRAPHS:
                done = reader.end_paragraph()
        else:
            reader.start(lineno)
            if how.layout == SENTENCE_PER_LINE:
                if len(line) > LONG_LINE_CHARS:
                    stats["long_line_split"] += 1
                    sentences = [Sentence(s) for s in split_sentences(line, how.lang)]
                else:
                    sentences = [Sentence(line.strip())]
                done = reader.add(sentences, new_paragraph=False)
            elif how.layout == PARAGRAPHS:
                done = reader.add_line(line)
            else:
                done = reader.add([Sentence(s) for s in split_sentences(line, how.lang)], new_paragraph=True)
        if line.strip():
            previous_blank = False
        if done is not None:
            yield done
    done = reader.end_document()
    if done is not None:
        yield done


def read_text(path: Path, how: Reading, stats: Counter) -> Iterator[Document]:
    return _documents(path.name, clean_lines(path, stats, how.decoding), how, stats)


def _record_lines(path: Path, how: Reading, stats: Counter, too_long: str) -> Iterator[Tuple[int, str]]:
    """(line number, text) of the non-blank lines of a file of a record a line (jsonl, tsv); a
    line over MAX_RECORD_BYTES (its line end not counted) is skipped, counted under `too_long`,
    never held whole: read with room for a CRLF end, its length checked once it is whole."""
    long = 0  # the number of the last line read in pieces
    for lineno, line, more in _decoded_lines(path, how.decoding, stats, MAX_RECORD_BYTES + 2, records=True):
        if more or lineno == long or _over_record_bytes(line, how.decoding.encoding):
            stats[too_long] += lineno != long
            long = lineno
        elif line.strip():
            yield lineno, line


def _over_record_bytes(line: str, encoding: str) -> bool:
    """Whether a whole line is over MAX_RECORD_BYTES in its file's encoding (encoded again only
    where its characters could be: at most 4 bytes each)."""
    return 4 * len(line) > MAX_RECORD_BYTES and len(line.encode(encoding, "surrogatepass")) > MAX_RECORD_BYTES


def _json_records(path: Path, how: Reading, stats: Counter) -> Iterator[Tuple[int, Union[str, List[str]]]]:
    """(line number, the text under text_field, or the list under "sentences") of each record:
    the list where it holds text only or the record has no text_field. A file holding one JSON
    array (its first line opens with `[`) is an error, read as jsonl it
    would give nothing; so is one none of whose first FIELD_CHECK_RECORDS records has text_field
    or "sentences" (a mistyped text_field), as a parquet file without the column is, and so is one
    none of whose first FIELD_CHECK_RECORDS lines is JSON (`_not_json`); a bad line among good
    ones is skipped and counted."""
    fields: Dict[str, None] = {}  # the keys of the records read while none had the text
    without, first = 0, True      # records read while none had the text; the first line to come
    malformed: List[Tuple[int, str]] = []  # (line, why) of the lines that are not JSON, while none is
    for lineno, line in _record_lines(path, how, stats, "json_line_over_40MB_skipped"):
        if first and line.lstrip().startswith("["):
            raise CorpusError(f"{path}: holds a JSON array (line {lineno} opens with '['), not a JSON object a line: "
                              f"convert it to jsonl, e.g. jq -c '.[]' {path} > {path.stem}.jsonl")
        first = False
        try:
            record = json.loads(line, strict=False)  # a tab or newline left raw in a string is still its text
        except json.JSONDecodeError as err:
            stats["malformed_json_line"] += 1
            if malformed is not None:
                malformed.append((lineno, err.msg))
                if len(malformed) == FIELD_CHECK_RECORDS:
                    raise _not_json(path, malformed)
            continue
        malformed = None
        if without is not None:  # no record has had the text yet
            if isinstance(record, dict) and (how.text_field in record or "sentences" in record):
                without = None
            else:
                without += 1
                fields.update(dict.fromkeys(record if isinstance(record, dict) else ()))
                if without == FIELD_CHECK_RECORDS:
                    raise _no_text_field(path, how, without, fields)
        sentences, text = (record.get("sentences"), record.get(how.text_field)) if isinstance(record, dict) else (0, 0)
        # the record's own sentences, unless some are not text (token lists, numbers) and its text is
        # there, or there are none (an empty list) and its text is there
        if isinstance(sentences, list) and ((sentences and all(isinstance(s, str) for s in sentences))
                                            or not isinstance(text, str)):
            texts = [s for s in sentences if isinstance(s, str)]
            if len(texts) < len(sentences):  # a token list, a number, an object: not a sentence
                stats["json_sentence_not_text"] += len(sentences) - len(texts)
            if isinstance(text, str) and _letters(text) != _letters("".join(texts)):
                stats["json_text_unlike_its_sentences_ignored"] += 1  # the sentences are read, not both
            yield lineno, texts
        elif isinstance(text, str):
            yield lineno, text
        else:
            stats["json_without_text_or_sentences"] += 1
    if malformed:
        raise _not_json(path, malformed)
    if without:
        raise _no_text_field(path, how, without, fields)


def _not_json(path: Path, malformed: Sequence[Tuple[int, str]]) -> CorpusError:
    """A jsonl file none of whose first lines is JSON: another format (a text file in a folder
    read as jsonl), never a few bad records to skip and count."""
    lineno, why = malformed[0]
    return CorpusError(f"{path}: none of its first {len(malformed)} line(s) is a JSON object (line {lineno}: {why}): "
                       f"not jsonl; read it with another format:, or leave it out of input:")


def _letters(text: str) -> str:
    """A text without its white space: a record's text and its sentences compared."""
    return "".join(text.split())


def _no_text_field(path: Path, how: Reading, records: int, fields: Dict[str, None]) -> CorpusError:
    names = ", ".join(list(fields)[:20]) + (", ..." if len(fields) > 20 else "") if fields else "none"
    which = "its first" if records == FIELD_CHECK_RECORDS else "any of its"
    return CorpusError(f"{path}: no field {how.text_field!r} in {which} {records} records (fields: {names}): "
                       "set text_field to the field that holds the text")


def _parquet_records(path: Path, how: Reading, stats: Counter) -> Iterator[Tuple[int, str]]:
    """(row number, text of the text_field column) of each row."""
    import pyarrow as pa  # imported only for parquet input
    import pyarrow.parquet as pq
    errors = (pa.ArrowException, OSError)
    try:
        table = pq.ParquetFile(path)
    except errors as err:
        raise CorpusError(f"{path}: not a readable parquet file ({err})") from None
    names = table.schema_arrow.names
    if how.text_field not in names:
        raise CorpusError(f"{path}: no column {how.text_field!r} (columns: {', '.join(names)}): "
                          "set text_field to the column that holds the text")
    kind = table.schema_arrow.field(how.text_field).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
        raise CorpusError(f"{path}: column {how.text_field!r} holds {kind}, not text")
    batches, row = table.iter_batches(batch_size=1024, columns=[how.text_field]), 0
    while True:
        try:
            batch = next(batches, None)
        except errors as err:
            raise _unreadable(path, f"row {row + 1}", err) from None
        if batch is None:
            return
        for text in batch.column(0).to_pylist():
            row += 1
            if text is None:
                stats["parquet_row_without_text"] += 1
            else:
                yield row, text


def _tsv_records(path: Path, how: Reading, stats: Counter) -> Iterator[Tuple[int, str]]:
    """(line number, text) of each row of a TSV file whose header names its columns: the
    `text_field` column's text, and beside `text_a` a `text_b` column's as a second paragraph. A
    header without the column is an error naming the columns it has; a row of another number of
    columns is skipped and counted."""
    columns: Optional[List[str]] = None
    for lineno, line in _record_lines(path, how, stats, "tsv_row_over_40MB_skipped"):
        cells = line.split("\t")
        if columns is None:
            columns = cells
            if how.text_field not in columns:
                raise CorpusError(f"{path}: its header has no column {how.text_field!r} (text_field); it has "
                                  f"{columns}")
            field, second = columns.index(how.text_field), columns.index("text_b") \
                if how.text_field == "text_a" and "text_b" in columns else None
            continue
        if len(cells) != len(columns):
            stats["tsv_row_wrong_column_count"] += 1
            continue
        yield lineno, cells[field] + (f"\n{cells[second]}" if second is not None else "")


def _records(path: Path, how: Reading, stats: Counter):
    return {"jsonl": _json_records, "parquet": _parquet_records, "tsv": _tsv_records}[how.format](path, how, stats)


def read_records(path: Path, how: Reading, stats: Counter) -> Iterator[Document]:
    """jsonl, parquet and tsv: each record's text read as a file of its own, in its layout."""
    for where, value in _records(path, how, stats):
        if isinstance(value, list):  # the record's own sentences
            pieces = _short_lines(((where, s, False) for s in value), stats)  # a sentence however long
            sentences = [Sentence(t) for t in (_clean(s, stats).strip() for _, s in pieces) if t]
            done = _finish(Document(f"{path.name}:{where}", [sentences]), stats)
            if done is not None:
                yield done
            continue
        empty = True
        lines = _short_lines(((where, line, False) for line in value.split("\n")), stats)
        for doc in _documents(path.name, _cleaned(lines, stats), how, stats):
            empty = False
            yield doc
        if empty:
            stats["empty_document"] += 1


# the PKU release's paragraph id (date-page-article-paragraph) and its compound words in brackets
_PD_ID = re.compile(r"(\d{8}-\d{2}-\d{3})-\d{3}/m")
_PD_COMPOUND = re.compile(r"\[(\S+/[^\s/\]]*(?:\s+\S+/[^\s/\]]*)*)\]([A-Za-z]+)")


def pku_paragraph(line: str) -> Tuple[Optional[str], str, int]:
    """(article id, `word/tag` items, compounds joined) of a People's Daily line. The PKU release
    opens each paragraph with its id (`19980101-01-001-002/m`: date, page, article, paragraph),
    dropped here, and writes a compound in brackets (`[中央/n 人民/n 广播/vn 电台/n]nt`), joined
    into one word of its own tag (`中央人民广播电台/nt`), as knowledge masking takes an entity
    whole. Other copies have neither: (None, the line, 0)."""
    first, _, rest = line.strip().partition(" ")
    found = _PD_ID.fullmatch(first)
    article, line = (found.group(1), rest) if found else (None, line)
    line, joined = _PD_COMPOUND.subn(
        lambda m: "".join(item.rpartition("/")[0] for item in m.group(1).split()) + "/" + m.group(2), line)
    return article, line, joined


def _tagged_sentences(line: str, stats: Counter) -> List[Sentence]:
    """A People's Daily paragraph (`pku_paragraph`'s items) cut after each sentence-final
    punctuation item (tag `w`); an item without a tag becomes a word tagged ""."""
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


def read_peoples_daily(path: Path, how: Reading, stats: Counter) -> Iterator[Document]:
    """Documents of a People's Daily file: articles by their id where the lines carry one (the
    PKU release), else a line that does not end a sentence (a title) starts one."""
    doc, article = None, None
    for lineno, line in clean_lines(path, stats, how.decoding):
        line_article, line, joined = pku_paragraph(line)
        if joined:
            stats["compound_words_joined"] += joined
        sentences = _tagged_sentences(line, stats)
        if not sentences:
            continue
        if line_article is not None:
            starts = line_article != article
            article = line_article
        else:
            last_word = sentences[-1].tagged.rsplit(None, 1)[-1].rpartition("/")[0]
            starts = last_word[-1] not in _ZH_SENTENCE_END and last_word[-1] not in "”」）)"
        if starts or doc is None:
            done = _finish(doc, stats)
            if done:
                yield done
            doc = Document(f"{path.name}:{lineno}")
        doc.paragraphs.append(sentences)
    done = _finish(doc, stats)
    if done:
        yield done


READERS = {"text": read_text, "jsonl": read_records, "parquet": read_records, "tsv": read_records,
           "peoples_daily": read_peoples_daily}


def read_documents(paths, fmt: str, lang: str, stats: Counter, layout: Optional[str] = None,
                   document_separator: Optional[str] = None, text_field: Optional[str] = None,
                   encoding: str = "utf-8", on_decode_error: str = "error") -> Iterator[Document]:
    """The documents of the files `paths`, read as a data config's format, lang, layout,
    document_separator, text_field, encoding and on_decode_error say (None: the format's default)."""
    how = Reading.of(fmt, lang, layout, document_separator, text_field, encoding, on_decode_error)
    for path in paths:
        yield from READERS[fmt](Path(path), how, stats)


# ---- guessing the layout -------------------------------------------------------------------------

SAMPLE_LINES = 2000     # a file's first lines, from which its layout is guessed
MIN_SAMPLE_LINES = 20   # fewer tell nothing
CHECKED_FILES = 100     # the first input files are checked, not all of a corpus of many small ones
_ENDS_SENTENCE = re.compile(r"[.!?。！？…][\"'”’」』）)\]_*]*$")


def _text_lines(path: Path, how: Reading) -> Iterator[str]:
    """The lines a file's text is read from: a text file's, or those of each record's text."""
    if how.format == "text":
        return (line for _, line in clean_lines(path, Counter(), how.decoding))
    return (line for _, value in _records(path, how, Counter()) if isinstance(value, str)
            for line in value.split("\n"))


def layout_warning(path, how: Reading) -> Optional[dict]:
    """A guess, from a file's first lines, that `how.layout` misreads it; None when it fits, or
    when there are too few lines to tell. Wrapped prose (most lines do not end a sentence, and
    most are within a quarter below one width) read a line a sentence or a paragraph wants
    `paragraphs`; lines of several sentences (most of the text) read a line a sentence want
    `paragraph_per_line`. Only a guess: the file is read as configured all the same."""
    if how.layout not in (SENTENCE_PER_LINE, PARAGRAPH_PER_LINE):
        return None
    lines = list(islice((line.strip() for line in _text_lines(Path(path), how)
                         if line.strip() and not how.is_separator(line)), SAMPLE_LINES))
    n = len(lines)
    if n < MIN_SAMPLE_LINES:
        return None
    ending = sum(1 for line in lines if _ENDS_SENTENCE.search(line)) / n
    lengths = sorted(map(len, lines))
    width = lengths[int(0.9 * n)]
    low = int(0.75 * width + 0.5)
    banded = sum(1 for k in lengths if low <= k <= width) / n
    figures = {"file": str(path), "layout": how.layout, "lines_sampled": n,
               "lines_ending_a_sentence": round(ending, 3)}
    head = f"{path}: {ending:.0%} of its {'first ' if n == SAMPLE_LINES else ''}{n:,} lines end a sentence"
    if ending < 0.5 and banded >= 0.5:
        unit = "a sentence" if how.layout == SENTENCE_PER_LINE else "a paragraph"
        return {**figures, "suggested_layout": PARAGRAPHS, "message":
                f"{head} and {banded:.0%} are {low} to {width} characters long: it looks like prose wrapped at "
                f"{width} characters, which layout {how.layout} reads as {unit} a line. If so, set "
                f"layout: {PARAGRAPHS} (a blank line ends a paragraph; its lines are joined and split into sentences)"}
    if how.layout == SENTENCE_PER_LINE:
        several = sum(len(line) for line in lines if len(split_sentences(line, how.lang)) > 1) / sum(lengths)
        if several > 0.5:
            return {**figures, "suggested_layout": PARAGRAPH_PER_LINE, "message":
                    f"{head}, and lines of more than one sentence hold {several:.0%} of its text: it looks like a "
                    f"paragraph a line, which layout {SENTENCE_PER_LINE} reads as one sentence a line. If so, set "
                    f"layout: {PARAGRAPH_PER_LINE} (each line is split into sentences)"}
    return None


def warn_layouts(paths: Sequence[str], how: Reading, shown: int = 5) -> List[dict]:
    """`layout_warning` of the first CHECKED_FILES files, the first `shown` printed to stderr."""
    found = [w for w in (layout_warning(p, how) for p in list(paths)[:CHECKED_FILES]) if w]
    for w in found[:shown]:
        print(f"warning: {w['message']}. It is read as configured all the same.", file=sys.stderr)
    if len(found) > shown:
        print(f"warning: {len(found) - shown} more input files look misread the same way: the manifest's "
              "layout_warnings lists them all", file=sys.stderr)
    return found

