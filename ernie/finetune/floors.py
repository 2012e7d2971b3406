"""Floors: what a task scores with no encoder at all, on the files its fine-tuning reads.

    python -m ernie.finetune.floors --task NAME|configs/finetune/NAME.yaml [--data DIR] [--output FILE]

A downstream figure means something only beside what a model without pre-training or a
Transformer scores on the same examples:
- classification (and ranking): a bag of words, TF-IDF of words (characters for Chinese) with
  1-grams or with 1-2-grams, then logistic regression (scikit-learn, lbfgs, at most 1,000
  iterations); the n-gram range and C in `C_GRID` are chosen by the dev score of the task's main
  metric, never by test (ties: the first of the grid, 1-grams and small C first). A text pair is
  the features of text_a, of text_b and their product (the words both share).
- tagging: each token's most frequent tag in the training data; a token the training data lacks
  gets the most frequent tag of all (ties go to the tag that sorts first).
The examples are the fine-tuning's own (`trainer.read_data`, with the settings' fixed sample of
the training set, `max_train_examples`), scored by the task kind's own `evaluate`: accuracy, F1,
MCC, MRR or the chunk F1 the fine-tuning reports. The command prints the floor as JSON and
writes it to --output (default DATA/floor.json); `floor_for` reads a recorded floor back when
the files it was computed from are unchanged (their SHA-256 is recorded) and computes it otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ernie.finetune.examples import DataError, labelled
from ernie.finetune.settings import config_for, load_settings
from ernie.finetune.tasks import KINDS, Task, get_task
from ernie.finetune.trainer import FinetuneData, label_set, read_data
from ernie_common.cli import output_file
from ernie_common.configfile import ConfigError, read
from ernie_common.fileio import atomic_write_text, sha256_file

C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
NGRAM_RANGES = ((1, 1), (1, 2))
MAX_ITER = 1000


class FloorError(ValueError):
    """A task that has no floor here (regression, reading comprehension)."""


class BagOfWords:
    """TF-IDF n-grams of the text (and of the pair's second text) + logistic regression."""

    def __init__(self, lang: str, ngram_range: Tuple[int, int], C: float):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        # words of one character count ("a", "I"); Chinese has no spaces: its units are characters
        self.vectorizer = (TfidfVectorizer(analyzer="char", ngram_range=ngram_range) if lang == "zh" else
                           TfidfVectorizer(token_pattern=r"(?u)\b\w+\b", ngram_range=ngram_range))
        self.classifier = LogisticRegression(C=C, max_iter=MAX_ITER)

    def _features(self, examples):
        from scipy.sparse import hstack
        a = self.vectorizer.transform([e.text_a for e in examples])
        if examples[0].text_b is None:
            return a
        b = self.vectorizer.transform([e.text_b for e in examples])
        return hstack([a, b, a.multiply(b)]).tocsr()

    def fit(self, examples) -> "BagOfWords":
        from sklearn.exceptions import ConvergenceWarning
        texts = [e.text_a for e in examples] + [e.text_b for e in examples if e.text_b is not None]
        self.vectorizer.fit(texts)
        with warnings.catch_warnings():  # a floor that stopped at MAX_ITER is still a floor
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.classifier.fit(self._features(examples), [e.label for e in examples])
        return self

    def predict(self, examples) -> List[str]:
        return [str(label) for label in self.classifier.predict(self._features(examples))]

    def positive_scores(self, examples) -> List[float]:
        """The probability of label "1" (a ranking task's score)."""
        column = list(self.classifier.classes_).index("1")
        return [float(p) for p in self.classifier.predict_proba(self._features(examples))[:, column]]


def task_scorer(task: Task, data: FinetuneData):
    """The task kind's evaluate(predictions, examples): the metrics its fine-tuning reports."""
    return KINDS[task.kind](task, None, 0, label_set(task, data.train, data.dev)).evaluate


def predictions(task: Task, model, examples) -> list:
    """A classifier's predictions as the task kind scores them: labels, or (label, score) pairs
    for ranking."""
    labels = model.predict(examples)
    return list(zip(labels, model.positive_scores(examples))) if task.kind == "ranking" else labels


def choose_on_dev(task: Task, data: FinetuneData, candidates: Iterable[Tuple[Dict, Callable]]) -> Dict:
    """Fits each candidate, (its settings, a function making the unfitted model), on the training
    examples and keeps the one with the best dev score of the task's main metric (ties: the
    first). Returns the chosen settings, every candidate's dev score, and the chosen model's dev
    and (where the test file is labelled) test scores."""
    evaluate, metric = task_scorer(task, data), task.main_metric
    grid, best = [], None
    for settings, make in candidates:
        model = make().fit(data.train)
        dev = evaluate(predictions(task, model, data.dev), data.dev)
        grid.append({**settings, "dev": dev[metric]})
        if best is None or dev[metric] > best[1][metric]:
            best = (settings, dev, model)
    settings, dev, model = best
    chosen = {"chosen": settings, "grid": grid, "dev": dev}
    if labelled(data.test):
        chosen["test"] = evaluate(predictions(task, model, data.test), data.test)
    return chosen


def classification_floor(task: Task, data: FinetuneData) -> Dict:
    chosen = choose_on_dev(task, data, (({"ngram_range": list(ngram_range), "C": C},
                                         lambda n=ngram_range, c=C: BagOfWords(task.lang, n, c))
                                        for ngram_range in NGRAM_RANGES for C in C_GRID))
    ngram_range, C = tuple(chosen["chosen"]["ngram_range"]), chosen["chosen"]["C"]
    unit = "characters" if task.lang == "zh" else "words"
    grams = "1-grams" if ngram_range == (1, 1) else f"1-{ngram_range[1]}-grams"
    return {"floor": "bag-of-words",
            "description": f"TF-IDF of {unit}, {grams} + logistic regression, C={C:g}, chosen on dev", **chosen}


def most_frequent_tags(examples) -> Tuple[Dict[str, str], str]:
    """({token: its most frequent tag}, the most frequent tag of all); ties: the tag sorting first."""
    by_token, overall = defaultdict(Counter), Counter()
    for example in examples:
        for token, tag in zip(example.words, example.tags):
            by_token[token][tag] += 1
            overall[tag] += 1

    def top(counts: Counter) -> str:
        return min(counts, key=lambda tag: (-counts[tag], tag))

    return {token: top(counts) for token, counts in by_token.items()}, top(overall)


def tagging_floor(task: Task, data: FinetuneData) -> Dict:
    evaluate = task_scorer(task, data)
    table, default = most_frequent_tags(data.train)

    def tagged(examples):
        return [[table.get(token, default) for token in e.words] for e in examples]

    floor = {"floor": "most-frequent-tag",
             "description": f"each token's most frequent training tag (unknown tokens: {default})",
             "dev": evaluate(tagged(data.dev), data.dev)}
    if labelled(data.test):
        floor["test"] = evaluate(tagged(data.test), data.test)
    return floor


def floor_function(task: Task):
    if task.kind in ("classification", "ranking"):
        return classification_floor
    if task.kind == "labelling":
        return tagging_floor
    raise FloorError(f"{task.name} is a {task.kind} task: floors are for classification, ranking and tagging")


def compute_floor(task: Task, data: FinetuneData) -> Dict:
    floor = floor_function(task)(task, data)
    return {"task": task.name, "metric": task.main_metric, **floor, "train_examples": len(data.train)}


def data_digests(task: Task, data_dir) -> Dict[str, str]:
    """SHA-256 of each of the task's files that the data directory holds."""
    names = [task.train_file, task.dev_file, task.test_file]
    return {name: sha256_file(Path(data_dir) / name) for name in names
            if name and (Path(data_dir) / name).is_file()}


def write_floor(task: Task, data_dir, max_train_examples: Optional[int], path) -> Dict:
    floor_function(task)  # a task without a floor is told so before its files are read
    floor = compute_floor(task, read_data(task, data_dir, max_train_examples))
    floor.update(max_train_examples=max_train_examples, data=data_digests(task, data_dir))
    atomic_write_text(path, json.dumps(floor, indent=1) + "\n")
    return floor


def floor_for(task: Task, data_dir, max_train_examples: Optional[int], path) -> Dict:
    """The floor recorded at `path` if it was computed from the same files and training sample
    (or if the files are gone); else computed and written there."""
    path = Path(path)
    if path.is_file():
        recorded = json.loads(path.read_text(encoding="utf-8"))
        digests = data_digests(task, data_dir)
        same = recorded.get("max_train_examples") == max_train_examples and recorded.get("data") == digests
        if same or not digests:
            return recorded
    return write_floor(task, data_dir, max_train_examples, path)


def _task_and_config(value: str) -> Tuple[Task, Optional[Path]]:
    """`--task`: a task name (its config is configs/finetune/NAME.yaml where that exists) or a
    fine-tuning config whose `task` key names it."""
    if value.endswith((".yaml", ".yml", ".json")):
        name = read(value).get("task")
        if not name:
            raise ConfigError(f"{value}: no `task` key naming the task")
        return get_task(name), Path(value)
    task = get_task(value)
    return task, config_for(task.name)


def main(argv: Sequence[str] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ernie.finetune.floors", description=__doc__.split("\n\n")[2])
    parser.add_argument("--task", required=True, help="task name or configs/finetune/NAME.yaml")
    parser.add_argument("--data", help="directory with the task's files (default data/NAME in lower case, "
                                       "where `python -m data_gen fetch` writes it)")
    parser.add_argument("--preset", help="a preset of the config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting (max_train_examples=2000: the fine-tuning's fixed sample)")
    parser.add_argument("--output", type=output_file, help="floor.json to write (default DATA/floor.json)")
    args = parser.parse_args(argv)
    try:
        task, config = _task_and_config(args.task)
        settings = load_settings(config, args.preset, args.set)
        data = Path(args.data or Path("data") / task.name.lower())
        floor = write_floor(task, data, settings.max_train_examples, Path(args.output or data / "floor.json"))
    except (KeyError, DataError, ConfigError, FloorError) as err:
        print(f"error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 2
    print(json.dumps(floor, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
