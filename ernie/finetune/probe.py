"""Linear probe: what a frozen encoder's sentence vectors hold for a task.

    python -m ernie.finetune.probe --task NAME (--init-model DIR | --vocab FILE) [--data DIR]
                                   [--set KEY=VALUE ...] [--output FILE]

A fine-tuned score mixes two things: what the encoder knows, and how fine-tuning moves it (the
learning rate, the seed, the steps). The probe measures the first alone, as SentEval does
(Conneau and Kiela 2018): the encoder is not trained; each example of the fine-tuning's own
files and training sample is read exactly as fine-tuning reads it (the settings' tokenizer,
`max_seq_len`, `task_id`) into the settings' sentence vector (`pooling`: the pooled [CLS]
output, or the mean of the top layer over the real tokens), and a logistic regression on those
vectors (standardised by the training set's mean and deviation, so one C grid serves encoders
whose vectors differ in scale) is chosen on dev like the floors' (`ernie.finetune.floors`: the
same C grid and solver, never test). When continued pre-training lowers a model's fine-tuned
score, the probe tells whether its vectors lost what the task needs or fine-tuning found them
harder to move. With --vocab and no --init-model the encoder is `--model-config`'s architecture
from random initialisation (`--seed`): what an untrained Transformer's vectors give.

Classification and ranking tasks. Prints the result as JSON and writes it to --output.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from ernie.finetune.batching import by_length
from ernie.finetune.examples import DataError
from ernie.finetune.floors import C_GRID, MAX_ITER, choose_on_dev
from ernie.finetune.settings import FinetuneSettings, SettingsError, config_for, load_settings
from ernie.finetune.tasks import KINDS, Task, get_task
from ernie.finetune.trainer import (
    DEFAULT_MODEL_CONFIG,
    FinetuneData,
    check_fits_model,
    describe_labels,
    label_set,
    load_encoder,
    read_data,
    resolve_casing,
    tokenizer_for,
)
from ernie.formats.checkpoint import CheckpointError
from ernie.model.config import ConfigError, ErnieConfig
from ernie_common.cli import output_file, random_seed
from ernie_common.fileio import atomic_write_text
from ernie_common.tokenization import VocabError


class ProbeError(ValueError):
    """A task a linear probe does not apply to."""


def sentence_vectors(config: ErnieConfig, params: Optional[Mapping[str, np.ndarray]], kind, features: Sequence[dict],
                     task_id: int, batch_size: int) -> np.ndarray:
    """[examples, hidden] sentence vectors of `kind`'s features (`kind.pooling`), by the frozen
    encoder in inference mode (no dropout)."""
    from ernie.model.static_graph import StaticEncoder
    encoder = StaticEncoder(config, params)
    vectors = np.empty((len(features), config.hidden_size), np.float32)
    for rows in by_length([len(f["src"]) for f in features], batch_size):
        feed = kind.batch([features[i] for i in rows], task_id)
        sequence, pooled = encoder.run(feed)
        if kind.pooling == "mean":
            mask = feed["input_mask"][:, :, None]
            pooled = (sequence * mask).sum(axis=1) / mask.sum(axis=1)
        vectors[rows] = pooled
    return vectors


class LinearProbe:
    """Logistic regression on fixed vectors of the examples (looked up by the example object),
    standardised by the training vectors' mean and deviation."""

    def __init__(self, vectors: Dict[int, np.ndarray], C: float):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        self.vectors = vectors
        self.model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=MAX_ITER))

    def _features(self, examples) -> np.ndarray:
        return np.stack([self.vectors[id(e)] for e in examples])

    def fit(self, examples) -> "LinearProbe":
        from sklearn.exceptions import ConvergenceWarning
        with warnings.catch_warnings():  # as the floors: a fit stopped at MAX_ITER still counts
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(self._features(examples), [e.label for e in examples])
        return self

    def predict(self, examples) -> list:
        return [str(label) for label in self.model.predict(self._features(examples))]

    def positive_scores(self, examples) -> list:
        column = list(self.model.classes_).index("1")
        return [float(p) for p in self.model.predict_proba(self._features(examples))[:, column]]


def check_task(task: Task) -> None:
    if task.kind not in ("classification", "ranking"):
        raise ProbeError(f"{task.name} is a {task.kind} task: the linear probe is for classification and ranking")


def linear_probe(task: Task, settings: FinetuneSettings, config: ErnieConfig,
                 params: Optional[Mapping[str, np.ndarray]], vocab_file, data: FinetuneData) -> Dict:
    check_task(task)
    check_fits_model(settings, config)
    tokenizer = tokenizer_for(vocab_file, settings)
    kind = KINDS[task.kind](task, tokenizer, settings.max_seq_len, label_set(task, data.train, data.dev),
                            pooling=settings.pooling)
    examples = [*data.train, *data.dev, *(data.test or ())]  # a task may have no test file
    features = kind.features(examples, with_labels=False)
    vectors = sentence_vectors(config, params, kind, features, settings.task_id, settings.eval_batch_size)
    by_example = {id(e): v for e, v in zip(examples, vectors)}
    chosen = choose_on_dev(task, data, (({"C": C}, lambda c=C: LinearProbe(by_example, c)) for C in C_GRID))
    return {"task": task.name, "metric": task.main_metric, "probe": "linear",
            "description": f"logistic regression on the frozen encoder's {settings.pooling} sentence vectors "
                           f"(standardised), C={chosen['chosen']['C']:g}, chosen on dev",
            **chosen, "pooling": settings.pooling, "max_seq_len": settings.max_seq_len,
            "train_examples": len(data.train), "cut_to_max_seq_len": sum(f["truncated"] for f in features)}


def main(argv: Sequence[str] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ernie.finetune.probe", description=__doc__.split("\n\n")[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, help="task name (see ernie/finetune/tasks.py)")
    parser.add_argument("--data", help="directory with the task's files (default data/NAME in lower case)")
    parser.add_argument("--init-model", help="model directory; omit (and give --vocab) for random initialisation")
    parser.add_argument("--vocab", help="vocab.txt for random initialisation")
    parser.add_argument("--model-config", default=str(DEFAULT_MODEL_CONFIG),
                        help="model config for random initialisation")
    parser.add_argument("--seed", type=random_seed, default=1, help="seed of random initialisation")
    parser.add_argument("--config", help="settings YAML (default configs/finetune/TASK.yaml)")
    parser.add_argument("--preset", help="a preset of the config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting (max_train_examples=300: the fine-tuning's fixed sample; pooling=mean)")
    parser.add_argument("--output", type=output_file, help="probe.json to write")
    args = parser.parse_args(argv)
    try:
        task = get_task(args.task)
        check_task(task)  # before any file is read
        settings = load_settings(args.config or config_for(task.name), args.preset, args.set)
        config, params, vocab = load_encoder(args.init_model, args.vocab, args.model_config)
        settings = resolve_casing(settings, vocab)
        data = read_data(task, Path(args.data or Path("data") / task.name.lower()), settings.max_train_examples)
        labels = describe_labels(task, data.train)
        if labels:
            print(labels, file=sys.stderr)
        if params is None:
            import paddle
            paddle.seed(args.seed)
        result = linear_probe(task, settings, config, params, vocab, data)
    except (KeyError, DataError, SettingsError, CheckpointError, ConfigError, ProbeError, VocabError) as err:
        print(f"error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 2
    result.update(init_model=args.init_model or f"random (seed {args.seed}, {args.model_config})",
                  max_train_examples=settings.max_train_examples, skipped=dict(data.skipped))
    text = json.dumps(result, indent=1)
    if args.output:
        atomic_write_text(args.output, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
