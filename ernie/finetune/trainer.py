"""One fine-tuning job: read the task's data once, then per seed train, evaluate on dev after
every epoch, keep the best epoch's parameters, and write predictions and a model directory.
The epoch is selected on dev alone (a dev file that is the test file is refused); the last
epoch's dev scores are reported beside the best epoch's.

The training program (with dropout) and the evaluation program (without) are two Paddle static
programs over one scope, sharing the parameters by name. The learning rate follows the
settings' `lr_schedule` (linear warm-up and decay, or constant); AdamW (beta2 0.999, epsilon
1e-6, global-norm clipping 1.0) decays every weight but biases and layer norms.
"""
from __future__ import annotations

import dataclasses
import filecmp
import json
import math
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ernie.finetune import FINETUNE_FILE, resume
from ernie.finetune.batching import by_length, epoch_batches
from ernie.finetune.description import Description
from ernie.finetune.examples import DataError, MrcExample, labelled
from ernie.finetune.heads import ErnieWithHead, inference_graph
from ernie.finetune.settings import FinetuneSettings, SettingsError
from ernie.finetune.tasks import AX, KINDS, Task
from ernie.formats.checkpoint import (
    CASING_FILE,
    CheckpointError,
    casing_files,
    check_vocab_fits,
    decide_casing,
    load_model_dir,
    model_lower_cases,
    save_model_dir,
)
from ernie.kernels.cpu_kernels import auto_amp, training_program_pass
from ernie.model.config import ErnieConfig
from ernie.model.optimization import adamw
from ernie.model.params_io import assign_scope_params, scope_params
from ernie.model.static_graph import encoder_feeds
from ernie_common.fileio import atomic_write_text
from ernie_common.machine import cpu_flags
from ernie_common.shipped_configs import shipped
from ernie_common.tokenization import UNKNOWN_WARNING, is_sentencepiece, load_vocab, make_tokenizer
from propeller.mixed_precision import MixedPrecision, MixedPrecisionUnsupported, check_supported

DEFAULT_MODEL_CONFIG = shipped("model", "tiny.yaml")


def load_encoder(init_model: Optional[str], vocab: Optional[str] = None,
                 model_config=DEFAULT_MODEL_CONFIG) -> Tuple[ErnieConfig, Optional[Dict[str, np.ndarray]], str]:
    """(config, parameters, vocab file) of the encoder a task starts from: the model directory
    `init_model`, or without one the architecture of `model_config` from random initialisation
    (parameters None) on the vocabulary `vocab`."""
    if init_model:
        if vocab or str(model_config) != str(DEFAULT_MODEL_CONFIG):  # they were ignored without a word
            raise CheckpointError("--vocab and --model-config are for random initialisation; the --init-model "
                                  "directory has its own vocabulary and config")
        config, params, vocab_file = load_model_dir(init_model)
        if vocab_file is None:
            raise CheckpointError(f"{init_model} has no vocab.txt")
        return config, params, vocab_file
    if not vocab:
        raise CheckpointError("random initialisation needs --vocab")
    config = ErnieConfig.from_file(model_config, vocab_size=len(load_vocab(vocab)))
    check_vocab_fits(vocab, config)
    return config, None, vocab


def resolve_amp(settings: FinetuneSettings) -> FinetuneSettings:
    """The settings with `amp: auto` made bf16 or off for this machine (said in one line), after
    checking that the precision runs here (a clear error, not a failure while the program is
    built)."""
    if settings.amp == "auto":
        amp, why = auto_amp()
        print(f"amp auto: {amp} ({why})", flush=True)
        settings = dataclasses.replace(settings, amp=amp)
    try:
        check_supported(settings.amp, cpu_flags())
    except MixedPrecisionUnsupported as err:
        raise SettingsError(str(err)) from None
    return settings


def resolve_casing(settings: FinetuneSettings, vocab_file) -> FinetuneSettings:
    """The settings with `do_lower_case` decided (`decide_casing`) with the record of the directory
    of the vocabulary: the model's, or a random twin's, which has its vocabulary. A casing taken
    from the record is said in one line."""
    record = Path(vocab_file).parent / CASING_FILE
    recorded = model_lower_cases(record.parent)
    try:
        lower = decide_casing(recorded, settings.do_lower_case, record,
                              f"leave do_lower_case out, or set it to {str(recorded).lower()}")
    except CheckpointError as err:
        raise SettingsError(str(err)) from None
    if settings.do_lower_case is None and recorded is not None:
        print(f"do_lower_case: {str(lower).lower()}, as {record} records", flush=True)
    return dataclasses.replace(settings, do_lower_case=lower)


def tokenizer_for(vocab_file, settings: FinetuneSettings):
    """The tokenizer of `vocab_file` with the settings' casing, once `resolve_casing` decided it
    (None would read as cased)."""
    if settings.do_lower_case is None:
        raise ValueError("do_lower_case is decided with the model first (resolve_casing)")
    return make_tokenizer(vocab_file, settings.do_lower_case)


def check_fits_model(settings: FinetuneSettings, config: ErnieConfig) -> None:
    """The settings' length and task id against the model's embedding tables (`input_problem`)."""
    problem = config.input_problem(settings.max_seq_len, settings.task_id)
    if problem:
        raise SettingsError(problem)


def label_set(task: Task, train_examples, dev_examples=()) -> List[str]:
    """The task's fixed labels, or the sorted labels found in its data. A class label must occur
    in the training data (a dev label it lacks is an error: a typo or another label set). Tags
    come from the training and dev data, with the I- tag of every B- tag, which word pieces need
    even if the data never shows it: a tag set has a long tail (People's Daily's POS tag Mg
    occurs in its dev sentences and not in 3,500 training ones), and such a tag is a miss to
    score, not a reason to refuse the data."""
    if task.labels:
        return list(task.labels)
    if task.kind in ("regression", "mrc"):
        return []
    if task.kind == "labelling":
        tags = {t for e in (*train_examples, *dev_examples) for t in e.tags}
        return sorted(tags | {"I-" + t[2:] for t in tags if t.startswith("B-")})
    return sorted({e.label for e in train_examples})


@dataclass
class FinetuneData:
    train: list
    dev: list
    test: Optional[list]
    extra_test: Dict[str, list]  # {submission name: examples}: MNLI's diagnostic set
    skipped: Counter
    data_dir: Optional[Path] = None  # where the splits' files are, which errors name


def describe_labels(task: Task, train_examples) -> Optional[str]:
    """For a classification task whose classes are the labels its training data holds: those
    labels with their counts, to show at start-up, where a stray `Fiction` beside `fiction`
    (a class of its own) is seen before training rather than in finetune.json afterwards."""
    if task.labels or task.kind != "classification":
        return None
    counts = Counter(e.label for e in train_examples)
    return (f"{task.name}: {len(counts)} labels in the {len(train_examples)} training examples: "
            + ", ".join(f"{label!r} {n}" for label, n in sorted(counts.items())))


def read_data(task: Task, data_dir, max_train_examples: Optional[int] = None) -> FinetuneData:
    """The task's examples; `max_train_examples` keeps a fixed random sample of the training set
    (the same for every run), in file order."""
    skipped = Counter()
    train = task.read(data_dir, "train", skipped)
    if max_train_examples and max_train_examples < len(train):
        keep = np.random.default_rng(0).choice(len(train), max_train_examples, replace=False)
        train = [train[i] for i in sorted(keep)]
    unanswerable = sum(isinstance(e, MrcExample) and not e.answers for e in train)
    if unanswerable:  # (SQuAD 2.0's kind: extractive training has no span to learn from them)
        skipped["training question without an answer, not trained on"] += unanswerable
    dev = task.read(data_dir, "dev", skipped)
    unanswered = [e.qid for e in dev if isinstance(e, MrcExample) and not e.answers]
    if unanswered:  # dev is scored after every epoch: a question without answers has no score
        raise DataError(f"{Path(data_dir) / task.dev_file}: {len(unanswered)} dev question(s) without answers (first "
                        f"id {unanswered[0]}): each is scored against its answers after every epoch; leave out the "
                        f"unanswerable ones (SQuAD 2.0's kind)")
    test = None
    has_test = task.test_file and (Path(data_dir) / task.test_file).is_file()
    _check_splits_differ({split: Path(data_dir) / name for split, name in
                          (("train", task.train_file), ("dev", task.dev_file), ("test", task.test_file if has_test else None))
                          if name})
    if has_test:
        test = task.read(data_dir, "test", skipped)
    extra = {}
    if task.name.startswith("MNLI"):
        diagnostic = _diagnostic_dir(Path(data_dir))
        if diagnostic is not None:
            extra[AX.submission] = AX.read(diagnostic, "test", skipped)
        else:
            print(f"note: no {AX.test_file} in {data_dir} nor in {Path(data_dir).parent / 'diagnostic'} (where "
                  f"download_glue_data.py puts it): {AX.submission}, which GLUE's submission needs, is not written")
    if not train or not dev:
        raise DataError(f"{task.name}: {data_dir} gave {len(train)} training and {len(dev)} dev examples")
    return FinetuneData(train, dev, test, extra, skipped, Path(data_dir))


def _diagnostic_dir(mnli_dir: Path) -> Optional[Path]:
    """Where GLUE's diagnostic set is, for the MNLI model to predict: beside MNLI's files, or in
    the `diagnostic` folder beside MNLI's (glue_data/diagnostic/diagnostic.tsv, as GLUE's download
    script and BERT's AXProcessor have it)."""
    return next((d for d in (mnli_dir, mnli_dir.parent / "diagnostic") if (d / AX.test_file).is_file()), None)


_SAME_SPLITS = {("dev", "test"): "the epoch would be selected on the test split",
                ("train", "dev"): "the dev scores, and the epoch they select, would be the training data's",
                ("train", "test"): "the test scores would be the training data's"}


def unknown_share(features: Sequence[dict], unk_id: int) -> float:
    """The share of the features' tokens that are [UNK] (the special tokens counted as known)."""
    tokens = sum(len(f["src"]) for f in features)
    return sum(int(np.count_nonzero(np.asarray(f["src"]) == unk_id)) for f in features) / max(tokens, 1)


def _check_splits_differ(files: Dict[str, Path]) -> None:
    """The epoch is selected on dev and test scores are reported: two splits that are one file, by
    name or by content, would score the model on what it trained on or select on what it reports.
    (Files of different sizes are told apart without being read.)"""
    for (a, b), why in _SAME_SPLITS.items():
        if a in files and b in files and files[a].is_file() and files[b].is_file() and (
                files[a].resolve() == files[b].resolve() or filecmp.cmp(files[a], files[b], shallow=False)):
            raise DataError(f"{files[a]} and {files[b]} are the same data: {why}; give each split a file of its own")


class DevHistory:
    """The dev scores after each epoch: the best epoch (the first with the highest main metric),
    whose parameters are kept, and the last epoch, reported beside it because the released ERNIE
    scripts report the end of training and the best of several epochs is an optimistic estimate."""

    def __init__(self, metric: str):
        self.metric = metric
        self.best = self.last = None  # (epoch, scores)
        self.best_params: Optional[Dict[str, np.ndarray]] = None

    def record(self, epoch: int, scores: Dict[str, float], params: Callable[[], Dict[str, np.ndarray]]) -> None:
        """`params` is called only for a new best epoch: copying the parameters costs."""
        self.last = (epoch, scores)
        if self.best is None or scores[self.metric] > self.best[1][self.metric]:
            self.best, self.best_params = (epoch, scores), params()

    def report(self) -> Dict:
        return {"best_epoch": self.best[0], "dev": self.best[1],
                "last_epoch": self.last[0], "last_dev": self.last[1]}


class FinetuneJob:
    def __init__(self, task: Task, settings: FinetuneSettings, config: ErnieConfig, vocab_file,
                 init_params: Optional[Dict[str, np.ndarray]], data: FinetuneData):
        self.task, self.settings, self.config = task, settings, config
        self.vocab_file, self.init_params, self.data = Path(vocab_file), init_params, data
        self.tokenizer = tokenizer_for(vocab_file, settings)
        if task.kind == "mrc":
            options = {k: getattr(settings, k) for k in ("doc_stride", "max_query_len", "max_answer_len", "n_best")}
        elif task.kind == "labelling":
            options = {}
        else:
            options = {"pooling": settings.pooling}
        if settings.pooling != "cls" and "pooling" not in options:
            raise SettingsError(f"pooling={settings.pooling}: {task.name} is a {task.kind} task; pooling "
                                f"applies to sentence-level tasks")
        self.kind = KINDS[task.kind](task, self.tokenizer, settings.max_seq_len,
                                     label_set(task, data.train, data.dev), **options)
        # Dev labels are featurised too (MRC excepted: that drops unanswerable examples), and a
        # labelled test file's class labels, so a class label the training data lacks is an error
        # now rather than after training. A test tag is not checked: it is a miss to score
        # (label_set).
        self.features = {"train": self._features("train", data.train, with_labels=True),
                         "dev": self._features("dev", data.dev, with_labels=task.kind != "mrc")}
        if data.test is not None:
            self.features["test"] = self._features(
                "test", data.test, with_labels=task.kind not in ("mrc", "labelling") and labelled(data.test))
        if not self.features["train"]:  # (reading comprehension drops a question whose answer is not in its context)
            name = self.task.file_name("train")
            raise DataError(f"{data.data_dir / name if data.data_dir else name}: none of its {len(data.train)} "
                            f"example(s) gave a training feature (an answer not found in its context is left out)")
        unknown = unknown_share(self.features["train"], self.tokenizer.unk_id)
        if unknown > UNKNOWN_WARNING:  # a model of another language trains on [UNK]s, and says nothing
            print(f"warning: {unknown:.1%} of the training text's tokens are [UNK]: does the model's vocabulary "
                  f"fit this text (its language, its casing)?", file=sys.stderr)

    def _features(self, split: str, examples, with_labels: bool) -> list:
        """The kind's features of a split's examples; an error names the split's file."""
        try:
            return self.kind.features(examples, with_labels)
        except DataError as err:
            name = self.task.file_name(split)
            raise DataError(f"{self.data.data_dir / name if self.data.data_dir else name}: {err}") from None

    # -- programs ----------------------------------------------------------------------------
    def build(self, seed: int):
        """(training runner, evaluator, the model's parameter names) for `seed`: the two programs
        over one scope, the encoder's parameters set from the initial model."""
        from propeller.static_runner import InferenceProgram, StaticRunner
        built = {}

        def train_fn():
            feeds, labels = encoder_feeds(self.config), self.kind.label_feeds()
            built["model"] = model = ErnieWithHead.for_kind(self.config, self.kind)
            loss = self.kind.loss(model(**feeds), labels)
            return {**feeds, **labels}, {"loss": loss}, loss

        def optimizer(lr):
            return adamw(lr, weight_decay=self.settings.weight_decay, beta2=0.999)

        if self.settings.amp == "auto":
            raise ValueError("amp auto is decided for the machine first (resolve_amp)")
        mixed_precision = None if self.settings.amp == "off" else MixedPrecision(self.settings.amp)
        runner = StaticRunner(train_fn, optimizer, seed=seed, accumulate=self.settings.accumulate,
                              mixed_precision=mixed_precision, program_pass=training_program_pass())
        evaluator = InferenceProgram(self.inference_fn, scope=runner.scope, place=runner.place)
        names = [p.name for p in built["model"].parameters()]
        if self.init_params is not None:
            encoder = [p.name for p in built["model"].ernie.parameters()]
            assign_scope_params(encoder, self.init_params, runner.place, runner.scope)
        return runner, evaluator, names

    def inference_fn(self):
        _, feeds, outputs = inference_graph(self.config, self.kind)
        return feeds, outputs

    # -- running -----------------------------------------------------------------------------
    def predict(self, evaluator, examples, features) -> list:
        decoded = [None] * len(features)
        for rows in by_length([len(f["src"]) for f in features], self.settings.eval_batch_size):
            batch = [features[i] for i in rows]
            outputs = evaluator.run(self.kind.batch(batch, self.settings.task_id))
            for i, item in zip(rows, self.kind.decode(batch, outputs)):
                decoded[i] = item
        return self.kind.predictions(decoded, features, examples)

    def run_seed(self, seed: int, out_dir: Path, progress: bool = True,
                 checkpointing: Optional[resume.Checkpointing] = None) -> Dict:
        """Trains and evaluates seed `seed` into `out_dir`; with `checkpointing`, its state is
        saved as it goes (`ernie.finetune.resume`) and, where asked, resumed from."""
        from propeller.learner import EvalHook, Learner, LogHook, ProgressHook, TimedCheckpointHook, append_jsonl
        s = self.settings
        runner, evaluator, names = self.build(seed)
        train = self.features["train"]
        per_epoch = math.ceil(len(train) / s.batch_size)
        total = per_epoch * s.epochs
        lengths = [len(f["src"]) for f in train]
        batches: Dict[int, list] = {}

        def plan(index: int):
            epoch, position = divmod(index, per_epoch)
            if epoch not in batches:
                batches.clear()
                batches[epoch] = epoch_batches(lengths, s.batch_size, seed, epoch, s.group_by_length)
            rows = batches[epoch][position]
            lr = s.learning_rate_at(index + 1, total)
            if s.accumulate == 1:
                feed = self.kind.batch([train[i] for i in rows], s.task_id)
                return feed, lr, {"epoch": epoch + 1, "tokens": int(feed["input_mask"].sum())}
            # micro-batches of at most max_sequences_per_device rows, their losses weighted alike
            parts = np.array_split(np.asarray(rows), -(-len(rows) // s.max_sequences_per_device))
            feeds = [self.kind.batch([train[i] for i in part], s.task_id) for part in parts]
            return feeds, lr, {"epoch": epoch + 1, "tokens": sum(int(f["input_mask"].sum()) for f in feeds)}

        history = DevHistory(self.task.main_metric)

        def evaluate(step: int) -> dict:
            scores = self.kind.evaluate(self.predict(evaluator, self.data.dev, self.features["dev"]), self.data.dev)
            history.record(math.ceil(step / per_epoch), scores, lambda: scope_params(names, runner.scope))
            return {f"dev/{k}": v for k, v in scores.items()}

        start = 0
        saved = resume.load(out_dir, checkpointing.run) if checkpointing and checkpointing.resume else None
        if saved is not None:
            try:
                runner.load_state(saved.state)
            except (KeyError, ValueError) as err:  # another program's variables (the code changed since)
                print(f"{out_dir / resume.CHECKPOINT}: does not fit this program ({err}): not resumed", flush=True)
                runner, evaluator, names = self.build(seed)  # none of its variables half set
            else:
                start = saved.step
                history.best, history.last, history.best_params = saved.best, saved.last, saved.best_params
                print(f"seed {seed}: resumed at step {start} of {total} from {out_dir / resume.CHECKPOINT}", flush=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        log = LogHook(out_dir / "log.jsonl", s.log_every, total, fields=("lr", "epoch"))
        hooks = [ProgressHook(total, enabled=progress), log,
                 EvalHook(evaluate, per_epoch, total, sinks=[append_jsonl(out_dir / "log.jsonl")])]
        if checkpointing:  # after the evaluation: a step that ends an epoch is saved with its scores
            hooks.append(TimedCheckpointHook(
                lambda step: resume.save(out_dir, checkpointing.run, step, runner.state(), history),
                checkpointing.seconds, total, every=s.log_every))

        def metrics(out, feed):
            outs = out if isinstance(out, list) else [out]
            return {"loss": (sum(float(o["loss"]) for o in outs) / len(outs), 1.0)}

        Learner(runner, metrics, hooks).train(plan, total, start)

        assign_scope_params(names, history.best_params, runner.place, runner.scope)
        result = {"seed": seed, **history.report()}
        dev_predictions = self.predict(evaluator, self.data.dev, self.features["dev"])
        self.write_predictions(out_dir / "dev_predictions", self.data.dev, dev_predictions)
        if self.data.test is not None:
            test_predictions = self.predict(evaluator, self.data.test, self.features["test"])
            self.write_predictions(out_dir / (self.task.submission or "test_predictions"),
                                   self.data.test, test_predictions)
            if labelled(self.data.test):
                result["test"] = self.kind.evaluate(test_predictions, self.data.test)
        for name, examples in self.data.extra_test.items():
            self.write_predictions(out_dir / name, examples,
                                   self.predict(evaluator, examples, self.kind.features(examples, False)))
        self.save_model(out_dir / "model", history.best_params)
        return result

    # -- outputs -----------------------------------------------------------------------------
    def write_predictions(self, path: Path, examples, predictions) -> None:
        """MRC: `{question id: answer}` JSON; other tasks: `index<TAB>prediction` TSV, the GLUE
        submission format (the index is the test file's id column, else the row number)."""
        if self.task.kind == "mrc":
            text = json.dumps({e.qid: p for e, p in zip(examples, predictions)}, ensure_ascii=False, indent=1)
            atomic_write_text(path.with_suffix(".json"), text)
            return
        rows = [f"{e.guid}\t{self.kind.format(p)}\n" for e, p in zip(examples, predictions)]
        atomic_write_text(path if path.suffix == ".tsv" else path.with_suffix(".tsv"),
                          "index\tprediction\n" + "".join(rows))

    def description(self) -> Description:
        """What `ernie.predict` needs to turn the exported outputs into predictions."""
        return Description(task=self.task.name, kind=self.task.kind, head=self.kind.head, labels=list(self.kind.labels),
                           max_seq_len=self.settings.max_seq_len, do_lower_case=self.settings.do_lower_case,
                           task_id=self.settings.task_id,
                           pooling=self.kind.pooling if self.kind.head == "sentence" else None)

    def save_model(self, path: Path, params: Dict[str, np.ndarray]) -> None:
        casing = {} if is_sentencepiece(self.vocab_file) else casing_files(self.settings.do_lower_case)
        save_model_dir(path, self.config, params, self.vocab_file,
                       extra_files={FINETUNE_FILE: self.description().to_json(), **casing})


