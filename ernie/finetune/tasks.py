"""Every supported fine-tuning dataset: its files, their layout, its kind and its metrics.

GLUE files are read as the GLUE distribution ships them (each task's own columns; CoLA's
train/dev without header); test predictions are written as the GLUE leaderboard expects
(`<submission>` files of `index<TAB>prediction`). MNLI's model also predicts the diagnostic set
(`diagnostic.tsv`, submitted as AX.tsv) when the data directory or its sibling `diagnostic` has it. The Chinese tasks use the
original ERNIE TSV (`text_a`, `text_b`, `label` header; NLPCC-DBQA adds `qid`).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from ernie.finetune.examples import DataError
from ernie.finetune.labelling_kind import LabellingKind
from ernie.finetune.mrc_kind import MrcKind
from ernie.finetune.ner_reader import read_tagged_examples
from ernie.finetune.squad_reader import read_mrc_examples
from ernie.finetune.text_kind import TextKind
from ernie.finetune.text_reader import TextLayout, read_text_examples

KINDS = {"classification": TextKind, "regression": TextKind, "ranking": TextKind,
         "labelling": LabellingKind, "mrc": MrcKind}


@dataclass(frozen=True)
class Task:
    name: str
    kind: str
    metrics: Tuple[str, ...]
    lang: str = "en"
    layout: Optional[TextLayout] = None
    test_layout: Optional[TextLayout] = None
    labels: Optional[Tuple[str, ...]] = None
    train_file: str = "train.tsv"
    dev_file: str = "dev.tsv"
    test_file: Optional[str] = "test.tsv"
    submission: Optional[str] = None

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    @property
    def takes_pairs(self) -> bool:
        """A sentence-level task whose examples are text pairs (text_a, text_b)."""
        return self.layout is not None and self.layout.text_b is not None

    def file_name(self, split: str) -> Optional[str]:
        return {"train": self.train_file, "dev": self.dev_file, "test": self.test_file}[split]

    def read(self, data_dir, split: str, skipped: Optional[Counter] = None):
        """Examples of `split` (train/dev/test); test examples carry no labels where the
        public test file has none."""
        name = self.file_name(split)
        if name is None:
            raise DataError(f"task {self.name} has no {split} file")
        return self.read_file(Path(data_dir) / name, test=split == "test", skipped=skipped,
                              training=split == "train")

    def read_file(self, path, test: bool = False, skipped: Optional[Counter] = None, training: bool = False):
        """Examples of one file in the task's format (`test`: the test file's columns). `skipped`
        counts what reading corrected or left out. Only a `training` file may leave out rows it
        cannot read (QQP's has a few) or repeat a question id: dev scores, test submissions and
        reading comprehension's `{id: answer}` predictions need every row, each under its own id."""
        path = Path(path)
        if self.kind == "labelling":
            return read_tagged_examples(path)
        if self.kind == "mrc":
            return read_mrc_examples(path, skipped, unique_ids=not training)
        layout = self.test_layout if test and self.test_layout else self.layout
        return read_text_examples(path, layout, regression=self.kind == "regression",
                                  skipped=skipped if training else None, test=test)


def _glue(name, text_a, text_b, label, labels, metrics=("acc",), kind="classification",
          test_guid="index", **files):
    return Task(name, kind, metrics, layout=TextLayout(text_a, text_b, label),
                test_layout=TextLayout(text_a, text_b, guid=test_guid), labels=labels,
                submission=files.pop("submission", f"{name}.tsv"), **files)


_NLI = ("contradiction", "entailment", "neutral")
_BINARY = ("0", "1")
_ENTAILMENT = ("entailment", "not_entailment")
_POLARITY = ("negative", "positive")

TASKS = {task.name: task for task in [
    Task("CoLA", "classification", ("mcc", "acc"), labels=_BINARY, submission="CoLA.tsv",
         layout=TextLayout(3, label=1, header=False, n_columns=4),
         test_layout=TextLayout("sentence", guid="index")),
    _glue("SST-2", "sentence", None, "label", _BINARY),
    _glue("MRPC", "#1 String", "#2 String", "Quality", _BINARY, ("f1", "acc")),
    _glue("STS-B", "sentence1", "sentence2", "score", None, ("pearson", "spearman"), "regression"),
    _glue("QQP", "question1", "question2", "is_duplicate", _BINARY, ("f1", "acc"), test_guid="id"),
    _glue("MNLI-m", "sentence1", "sentence2", "gold_label", _NLI, dev_file="dev_matched.tsv",
          test_file="test_matched.tsv"),
    _glue("MNLI-mm", "sentence1", "sentence2", "gold_label", _NLI, dev_file="dev_mismatched.tsv",
          test_file="test_mismatched.tsv"),
    _glue("QNLI", "question", "sentence", "label", _ENTAILMENT),
    _glue("RTE", "sentence1", "sentence2", "label", _ENTAILMENT),
    _glue("WNLI", "sentence1", "sentence2", "label", _BINARY),
    Task("XNLI", "classification", ("acc",), "zh", TextLayout("text_a", "text_b", "label")),
    Task("ChnSentiCorp", "classification", ("acc",), "zh", TextLayout("text_a", label="label")),
    Task("LCQMC", "classification", ("acc",), "zh", TextLayout("text_a", "text_b", "label")),
    Task("BQ", "classification", ("acc",), "zh", TextLayout("text_a", "text_b", "label")),
    Task("NLPCC-DBQA", "ranking", ("mrr", "f1"), "zh", TextLayout("text_a", "text_b", "label", qid="qid"),
         labels=_BINARY),
    Task("sentiment", "classification", ("acc",), "zh", TextLayout("text_a", label="label"), labels=_BINARY),
    Task("brown-genre", "classification", ("acc",), "en", TextLayout("text_a", label="label")),
    Task("review-sentiment", "classification", ("acc",), "en", TextLayout("text_a", label="label"),
         labels=_POLARITY),
    Task("tweet-sentiment", "classification", ("acc",), "en", TextLayout("text_a", label="label"),
         labels=_POLARITY),
    Task("spam-email", "classification", ("f1", "acc"), "en", TextLayout("text_a", label="label"),
         labels=("ham", "spam")),
    Task("brown-pos", "labelling", ("f1",), "en"),
    Task("MSRA-NER", "labelling", ("f1",), "zh"),
    Task("peoples-daily-pos", "labelling", ("f1",), "zh"),
    Task("CMRC2018", "mrc", ("f1", "em"), "zh", train_file="train.json", dev_file="dev.json", test_file=None),
    Task("DRCD", "mrc", ("f1", "em"), "zh", train_file="train.json", dev_file="dev.json", test_file="test.json"),
    Task("DuReader", "mrc", ("f1", "em"), "zh", train_file="train.json", dev_file="dev.json", test_file=None),
    Task("SQuAD", "mrc", ("f1", "em"), "en", train_file="train-v1.1.json", dev_file="dev-v1.1.json",
         test_file=None),
]}

# Predicted by the MNLI model; test-only.
AX = Task("AX", "classification", ("acc",), layout=TextLayout("sentence1", "sentence2", guid="index"),
          labels=_NLI, test_file="diagnostic.tsv", submission="AX.tsv")


def get_task(name: str) -> Task:
    folded = {key.lower(): task for key, task in TASKS.items()}
    if name.lower() not in folded:
        raise KeyError(f"unknown task {name!r}; choose from {', '.join(TASKS)}")
    return folded[name.lower()]
