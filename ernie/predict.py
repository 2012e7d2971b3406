"""`python -m ernie.predict --model EXPORTED --input FILE.tsv [--output FILE]`

Batch prediction with `paddle.inference` from a fine-tuned model exported by
`python -m ernie.export --format paddle-inference` (or `hub`). The input is TSV: a file of the
model's task as `ernie.finetune` reads it (a GLUE test.tsv or dev.tsv: the task's text columns,
and a test file's index column), a header naming `text_a` (and `text_b` for pair tasks), or,
with `--plain`, one `text_a[<TAB>text_b]` a line without a header. A pair given to a single-text
model, or one text to a pair model, is an error. Each input row gets its output row: a blank line
of a `text_a` or `--plain` file is a row of empty texts, predicted as such and counted on
standard error (a task's file is read as `ernie.finetune` reads it: its rows are its non-blank
lines).
For sequence labelling, text_a holds the words joined by `\\x02` (ERNIE's format), or plain
text, which is split into characters (Chinese tasks) or at whitespace (English tasks).
For reading comprehension, text_a is the question and text_b the context; or the input is a
SQuAD-style JSON file, and the output the official prediction file, `{question id: answer}`.
Otherwise the output is TSV: `index<TAB>prediction` plus, for classification, one probability
column per label. The index is the file's own where it has one (a GLUE test file's, as in
`ernie.finetune`'s submission file), else the row's number from 0. Inputs longer than the
model's maximum length are cut to it, and counted on standard error.

Exit codes: 0 done; 2 a user's mistake (bad input, a missing or damaged model), with one line
saying what and where.

Paddle's predictor and PyTorch each bring an OpenMP runtime; in one process they compete for the
cores and the predictor slows down. `Predictor` warns when torch is already imported: serve
Paddle and PyTorch models from separate processes.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ernie.export import INFERENCE_PREFIX, verify_checksums
from ernie.finetune.description import read_description
from ernie.finetune.examples import DataError, MrcExample, TaggedExample, TextExample
from ernie.finetune.squad_reader import read_mrc_examples
from ernie.finetune.text_reader import read_text_examples
from ernie.finetune.tsv import read_lines
from ernie.formats.checkpoint import VOCAB_FILE_NAME, CheckpointError, check_vocab_fits
from ernie.kernels.cpu_runtime import usable_cores
from ernie.model.config import CONFIG_FILE_NAME, ConfigError, ErnieConfig
from ernie.serving.inference_model import task_kind
from ernie_common.cli import input_file, output_file, positive_int
from ernie_common.tokenization import VocabError
from propeller.device import DeviceError, cuda_device_count, device_choice


class Predictor:
    def __init__(self, exported_dir, batch_size: int = 32, threads: Optional[int] = None):
        import paddle.inference as inference
        exported_dir = Path(exported_dir)
        if not exported_dir.is_dir():
            raise CheckpointError(f"{exported_dir}: no such directory")
        self.description = read_description(exported_dir)
        if self.description is None:
            raise CheckpointError(f"{exported_dir} is not a fine-tuned export (no finetune.json); "
                                  f"embed texts with `python -m ernie.encode` instead")
        model = exported_dir / f"{INFERENCE_PREFIX}.json"
        if not model.is_file():
            raise CheckpointError(f"{model} not found: export with --format paddle-inference or hub")
        verify_checksums(exported_dir)
        vocab = exported_dir / VOCAB_FILE_NAME
        if not vocab.is_file():
            raise CheckpointError(f"{vocab} not found: the model tokenizes with the vocabulary it was trained "
                                  f"with; export it again")
        check_vocab_fits(vocab, ErnieConfig.from_file(exported_dir / CONFIG_FILE_NAME))
        config = inference.Config(str(model), str(exported_dir / f"{INFERENCE_PREFIX}.pdiparams"))
        kind, gpu = device_choice(os.environ, cuda_device_count())  # the launcher's GPU for this process, if any
        if kind == "gpu":
            config.enable_use_gpu(256, gpu)
        else:
            config.disable_gpu()
        config.set_cpu_math_library_num_threads(threads or usable_cores())
        if "torch" in sys.modules:
            warnings.warn("torch is imported in this process: its OpenMP runtime and Paddle's compete for "
                          "the cores and slow the predictor; serve Paddle and PyTorch models from separate "
                          "processes", RuntimeWarning, stacklevel=2)
        config.disable_glog_info()
        try:
            self.predictor = inference.create_predictor(config)
        except Exception as err:  # Paddle raises its own kinds; a truncated .pdiparams is one
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"{exported_dir}: Paddle Inference cannot load the model ({first}); "
                                  f"export it again") from None
        self.kind = task_kind(self.description, vocab)
        if self.predictor.get_output_names() != self.kind.output_names:  # exports before outputs had names
            raise CheckpointError(f"{exported_dir}: the graph's outputs {self.predictor.get_output_names()} are not "
                                  f"{self.kind.output_names}: export the model again")
        self.batch_size = batch_size
        self.truncated = 0  # inputs cut to the maximum length by the last prediction

    def run(self, feed) -> dict:
        for name in self.predictor.get_input_names():
            self.predictor.get_input_handle(name).copy_from_cpu(np.ascontiguousarray(feed[name]))
        self.predictor.run()
        return {name: self.predictor.get_output_handle(name).copy_to_cpu() for name in self.kind.output_names}

    def examples(self, texts: Sequence[str], text_pairs: Optional[Sequence[str]] = None,
                 ids: Optional[Sequence[str]] = None) -> list:
        """The examples of the model's kind; `ids` name them (default: their numbers from 0)."""
        ids = ids if ids is not None else [str(i) for i in range(len(texts))]
        if self.kind.head == "token":
            return [TaggedExample(i, self._words(t)) for i, t in zip(ids, texts, strict=True)]
        if self.kind.head == "span":
            if text_pairs is None:
                raise DataError("reading comprehension needs a question (text_a) and a context (text_b) per line")
            return [MrcExample(i, q, c, []) for i, q, c in zip(ids, texts, text_pairs, strict=True)]
        task = self.kind.task
        if task.layout is not None and task.takes_pairs != (text_pairs is not None):
            raise DataError(f"the model ({task.name}) takes "
                            + ("a pair of texts (text_a, text_b)" if task.takes_pairs else "one text")
                            + " an example, and was given " + ("pairs" if text_pairs is not None else "single texts"))
        pairs = text_pairs if text_pairs is not None else [None] * len(texts)
        return [TextExample(i, a, b) for i, a, b in zip(ids, texts, pairs, strict=True)]

    def _words(self, text: str) -> List[str]:
        if "\x02" in text:
            return text.split("\x02")
        return list(text) if self.kind.task.lang == "zh" else text.split()

    def predict(self, texts: Sequence[str], text_pairs: Optional[Sequence[str]] = None) -> list:
        """Labels (classification), (label, score) (ranking), scores (regression), a tag per
        word (sequence labelling), or the answer text (reading comprehension), one per text."""
        return self.predict_examples(self.examples(texts, text_pairs))

    def predict_examples(self, examples: list) -> list:
        features = self.kind.features(examples, with_labels=False)
        self.truncated = sum(f.get("truncated", False) for f in features)
        decoded = []
        for start in range(0, len(features), self.batch_size):
            batch = features[start:start + self.batch_size]
            decoded += self.kind.decode(batch, self.run(self.kind.batch(batch, self.description.task_id)))
        self.last_decoded = decoded
        return self.kind.predictions(decoded, features, examples)


@dataclass(frozen=True)
class Inputs:
    """The rows of an input file: their ids, texts, and second texts (None for single texts);
    `blank`: how many were blank lines, read as empty texts."""
    ids: List[str]
    texts: List[str]
    pairs: Optional[List[str]]
    blank: int = 0


def read_inputs(path, task=None, plain: bool = False) -> Inputs:
    """The rows of a TSV. A file of the model's `task` as `ernie.finetune` reads it is read by
    the task's own reader (a GLUE test.tsv by its index and sentence columns, a dev.tsv with its
    label column left out); otherwise its header must name `text_a` (and `text_b`).
    `plain`: no header, `text_a[<TAB>text_b]` a line. A blank line of a `text_a` or plain file is
    a row of empty texts: each input row gets its output row, in order."""
    lines = read_lines(path)
    if lines[-1] == "":  # the end of the last line
        lines.pop()
    if not any(line.strip() for line in lines):
        raise DataError(f"{path}: no input lines")
    header = lines[0].split("\t")
    layout = None if plain else _layout_of(task, header)
    if layout is not None:
        examples = read_text_examples(path, replace(layout, label=None))
        if not examples:
            raise DataError(f"{path}: a header and no input lines")
        pairs = [e.text_b for e in examples] if layout.text_b is not None else None
        return Inputs([e.guid for e in examples], [e.text_a for e in examples], pairs)
    if plain:  # the first line with text says whether the lines are pairs
        first = next(row for row, line in enumerate(lines) if line.strip())
        columns, first_line = len(lines[first].split("\t")), first + 1
        a, b = 0, 1 if columns > 1 else None
        if task is not None and task.layout is not None and (b is not None) != task.takes_pairs:
            raise DataError(f"{path}:{first_line}: " + ("one text" if b is None else "a text pair") + f", but the "
                            f"model ({task.name}) takes " + ("a pair of texts" if task.takes_pairs else "one text")
                            + " an example")
    elif "text_a" in header:
        a, b = header.index("text_a"), header.index("text_b") if "text_b" in header else None
        columns, first_line, lines = len(header), 1, lines[1:]
    else:
        expected = f"the columns of a {task.name} file, or " if task is not None and task.layout is not None else ""
        raise DataError(f"{path}:1: the first line names neither {expected}text_a; for lines of text without a "
                        f"header (text_a[<TAB>text_b]) pass --plain")
    texts, pairs, blank = [], [], 0
    for lineno, line in enumerate(lines, 1 if plain else 2):
        fields = line.split("\t")
        if not line.strip():
            fields, blank = [""] * columns, blank + 1
        elif len(fields) != columns:
            raise DataError(f"{path}:{lineno}: {len(fields)} column(s) where line {first_line} has {columns}")
        texts.append(fields[a])
        pairs.append(fields[b] if b is not None else None)
    if not texts:
        raise DataError(f"{path}: a header and no input lines")
    return Inputs([str(row) for row in range(len(texts))], texts, pairs if b is not None else None, blank)


def _layout_of(task, header: List[str]):
    """The layout of `task` (test file first, then train/dev) that a file whose first line is
    `header` has: a header holding the layout's text columns (and a test file's index column),
    or a header-less row with the layout's number of columns (CoLA's train and dev files). A
    header naming `text_a` is a text_a file (each line a row, a blank one too) unless the layout
    needs the file's index column."""
    for layout in (getattr(task, "test_layout", None), getattr(task, "layout", None)):
        if layout is None or (layout.guid is None and "text_a" in header):
            continue
        named = [c for c in (layout.text_a, layout.text_b, layout.guid) if c is not None]
        if layout.header and all(c in header for c in named):
            return layout
        if not layout.header and len(header) == layout.n_columns and "text_a" not in header:
            return layout
    return None


def evaluate_file(predictor: Predictor, path) -> str:
    """Scores of the model on a labelled file of its task, printed to standard error; returns
    the predictions in predict's output format."""
    task = predictor.kind.task
    examples = task.read_file(path)
    if not examples:
        raise DataError(f"{path}: no labelled examples")
    try:
        predictions = predictor.predict_examples(examples)
        scores = predictor.kind.evaluate(predictions, examples)
    except DataError as err:  # a label the model's task does not have: its line
        raise DataError(f"{path}: {err}") from None
    print(f"{task.name} on {path} ({len(examples)} examples): "
          + ", ".join(f"{name} {value:.4f}" for name, value in scores.items()), file=sys.stderr)
    if predictor.kind.head == "span":
        return json.dumps({e.qid: a for e, a in zip(examples, predictions)}, ensure_ascii=False, indent=1) + "\n"
    return tsv_output(predictor, predictions, [e.guid for e in examples])


def tsv_output(predictor: Predictor, predictions: list, ids: Sequence[str]) -> str:
    """`index<TAB>prediction[<TAB>probability per label]` a row; the index is the input's id."""
    kind = predictor.kind
    with_probs = kind.head == "sentence" and not kind.regression
    lines = ["index\tprediction" + "".join(f"\t{label}" for label in kind.labels if with_probs)]
    for i, (row_id, prediction) in enumerate(zip(ids, predictions, strict=True)):
        probs = "".join(f"\t{p:.6f}" for p in predictor.last_decoded[i]) if with_probs else ""
        lines.append(f"{row_id}\t{kind.format(prediction)}{probs}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ernie.predict", description=__doc__.split("\n\n")[1])
    parser.add_argument("--model", required=True, help="exported directory (paddle-inference or hub)")
    parser.add_argument("--input", required=True, type=input_file, help="TSV of texts (or SQuAD-style JSON for reading comprehension)")
    parser.add_argument("--output", type=output_file, help="output TSV (default: standard output)")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--threads", type=positive_int, help="CPU math threads (default: the cores this process may use)")
    parser.add_argument("--plain", action="store_true",
                        help="the input has no header: text_a, or text_a<TAB>text_b, a line")
    parser.add_argument("--eval", action="store_true",
                        help="the input is a labelled file of the model's task (a dev.tsv, MSRA-NER's, SQuAD "
                             "JSON): print its scores, computed as ernie.finetune computes them")
    args = parser.parse_args(argv)
    try:
        predictor = Predictor(args.model, args.batch_size, args.threads)
        if args.eval:
            text = evaluate_file(predictor, args.input)
        elif predictor.kind.head == "span" and args.input.endswith(".json"):
            examples = read_mrc_examples(args.input)
            answers = predictor.predict_examples(examples)
            text = json.dumps({e.qid: a for e, a in zip(examples, answers)}, ensure_ascii=False, indent=1) + "\n"
        else:
            inputs = read_inputs(args.input, predictor.kind.task, args.plain)
            examples = predictor.examples(inputs.texts, inputs.pairs, inputs.ids)
            text = tsv_output(predictor, predictor.predict_examples(examples), inputs.ids)
            if inputs.blank:
                print(f"note: {inputs.blank} blank line(s) of {args.input} predicted as empty texts", file=sys.stderr)
    except (CheckpointError, ConfigError, DataError, VocabError, DeviceError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if predictor.truncated:
        print(f"note: {predictor.truncated} input(s) longer than the model's "
              f"{predictor.description.max_seq_len} tokens were cut to it", file=sys.stderr)
    if args.output:
        from ernie_common.fileio import atomic_write_text
        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
