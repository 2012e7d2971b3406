"""Does pre-training pay downstream? A pre-trained model against the same architecture from random
initialisation, fine-tuned with `python -m ernie.finetune` on the labelled tasks the registries
give, with few labels and with the full training set.

Protocol (as papers compare initialisations): each initialisation gets its own best learning rate
from a small grid (1e-4, 3e-4, 1e-3 with few labels; 3e-4, 1e-3 with all, where 1e-4 is too slow
for one epoch), chosen by the dev score of the first `--grid-seeds` seeds; then the remaining
seeds run at that rate, and the report gives the mean and standard deviation of all `--seeds`
seeds on dev and on test (test is never used to choose anything). Batches of 32; 3 epochs with
few labels, 1 with the full training set; linear warm-up over 10% of the steps, then linear decay.

    python scripts/downstream.py run --model output/small_en/pretrain/model --lang en \
        --output output/downstream/small_en
    python scripts/downstream.py report output/downstream/small_en

`run` skips every fine-tuning run whose metrics.json exists and resumes the others
(`ernie.finetune --resume`), so a killed evaluation continues with the seed it was on.
`report` gives each task a floor row beside the two initialisations: what no encoder at all scores
on the same files and training sample (`ernie/finetune/floors.py`: TF-IDF + logistic regression,
or each token's most frequent tag), read from SETTING/floor.json or computed into it, and names the
tasks where the pre-trained encoder does not beat it.
Data: `python -m data_gen fetch brown-genre|sentiment|msra-ner --dir data`.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # ernie, wherever the script is run from

INITS = ("pretrained", "random")
GRID = {"few": (1e-4, 3e-4, 1e-3), "full": (3e-4, 1e-3)}


@dataclass(frozen=True)
class Setting:
    name: str                 # the run directory
    task: str                 # ernie.finetune's task name
    data: str                 # directory of the task's files
    metric: str
    train_examples: Optional[int]  # None: the full training set
    epochs: int

    @property
    def data_dir(self) -> Path:
        return ROOT / self.data

    @property
    def grid(self):
        return GRID["full" if self.train_examples is None else "few"]

    @property
    def title(self) -> str:
        size = "full training set" if self.train_examples is None else f"{self.train_examples:,} training examples"
        return f"{self.task}, {size}"


SETTINGS = {
    "en": [Setting("brown-genre-2k", "brown-genre", "data/brown-genre", "acc", 2000, 3),
           Setting("brown-genre-full", "brown-genre", "data/brown-genre", "acc", None, 1)],
    "zh": [Setting("sentiment-2k", "sentiment", "data/sentiment", "acc", 2000, 3),
           Setting("sentiment-full", "sentiment", "data/sentiment", "acc", None, 1),
           Setting("msra-ner-2k", "MSRA-NER", "data/msra-ner", "f1", 2000, 3),
           Setting("msra-ner-full", "MSRA-NER", "data/msra-ner", "f1", None, 1)],
}


def _lr_name(lr: float) -> str:
    return f"lr-{lr:g}"


def _finetune(setting: Setting, init: str, model: Path, lr: float, first_seed: int, seeds: int, out: Path,
              threads: int) -> dict:
    metrics = out / "metrics.json"
    if not metrics.is_file():
        source = (["--init-model", str(model)] if init == "pretrained" else
                  ["--vocab", str(model / "vocab.txt"), "--model-config", str(model / "ernie_config.json")])
        limit = "null" if setting.train_examples is None else str(setting.train_examples)
        command = [sys.executable, "-m", "ernie.finetune", "--task", setting.task, "--data", str(setting.data_dir),
                   *source,
                   "--output", str(out), "--seeds", str(seeds), "--first-seed", str(first_seed), "--quiet", "--resume",
                   "--set", f"learning_rate={lr}", "--set", f"epochs={setting.epochs}",
                   "--set", f"max_train_examples={limit}", "--set", "batch_size=32",
                   # the protocol's schedule, whatever the task's config says (MSRA-NER's follows
                   # the released scripts for base models: no warm-up)
                   "--set", "warmup_proportion=0.1", "--set", "lr_schedule=linear"]
        print(f"{setting.name} {init} lr {lr:g} seeds {first_seed}-{first_seed + seeds - 1}", flush=True)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "finetune.log", "w", encoding="utf-8") as log:
            subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT,
                           env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return json.loads(metrics.read_text(encoding="utf-8"))


def _dev_mean(report: dict, metric: str) -> float:
    return statistics.fmean(s["dev"][metric] for s in report["seeds"])


def _evaluate(args, setting: Setting, init: str, threads: int) -> None:
    """One initialisation on one setting: the grid, then the remaining seeds at the chosen rate."""
    model, base = Path(args.model), Path(args.output) / setting.name / init
    grid = {lr: _finetune(setting, init, model, lr, 1, args.grid_seeds, base / _lr_name(lr), threads)
            for lr in (args.grid or setting.grid)}
    best = max(grid, key=lambda lr: _dev_mean(grid[lr], setting.metric))
    if args.seeds > args.grid_seeds:
        _finetune(setting, init, model, best, args.grid_seeds + 1, args.seeds - args.grid_seeds,
                  base / _lr_name(best) / "more", threads)


def run(args) -> int:
    """The two initialisations run side by side (`--jobs 2`), each on its share of the cores:
    for a model this small that is faster than one run on all of them."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // args.jobs)
    for setting in SETTINGS[args.lang]:
        if args.only and setting.name not in args.only:
            continue
        with ThreadPoolExecutor(args.jobs) as pool:
            for done in [pool.submit(_evaluate, args, setting, init, threads) for init in INITS]:
                done.result()
    return 0


def collect(out: Path, setting: Setting, init: str) -> Optional[Dict]:
    """The chosen learning rate and every seed's scores at it, from the run's files."""
    base = out / setting.name / init
    grid = {}
    for path in sorted(base.glob("lr-*/metrics.json")):
        grid[float(path.parent.name[3:])] = json.loads(path.read_text(encoding="utf-8"))
    if not grid:
        return None
    best = max(grid, key=lambda lr: _dev_mean(grid[lr], setting.metric))
    seeds = list(grid[best]["seeds"])
    more = base / _lr_name(best) / "more" / "metrics.json"
    if more.is_file():
        seeds += json.loads(more.read_text(encoding="utf-8"))["seeds"]
    return {"lr": best, "grid": {lr: _dev_mean(r, setting.metric) for lr, r in grid.items()},
            "dev": [s["dev"][setting.metric] for s in seeds],
            "test": [s["test"][setting.metric] for s in seeds if "test" in s]}


def _mean_sd(values: List[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:  # no spread to show (the seeds column says 1)
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.fmean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def floor(out: Path, setting: Setting) -> Dict:
    """The setting's floor on its files and training sample: SETTING/floor.json where it was computed
    from the same files, else computed now (seconds) and written there; {"error": ...} where the
    files are missing and no floor was recorded."""
    from ernie.finetune.examples import DataError
    from ernie.finetune.floors import floor_for
    from ernie.finetune.tasks import get_task
    try:
        return floor_for(get_task(setting.task), setting.data_dir, setting.train_examples,
                         out / setting.name / "floor.json")
    except DataError as err:
        return {"error": str(err)}


def results(out: Path) -> Iterator[Tuple[Setting, Dict[str, Dict], Dict]]:
    """(setting, {init: collect()}, floor) of every setting both initialisations have results for."""
    for setting in [s for group in SETTINGS.values() for s in group]:
        found = {init: collect(out, setting, init) for init in INITS}
        if all(found.values()):
            yield setting, found, floor(out, setting)


def report_table(out: Path) -> str:
    """A markdown table of every setting found under `out`: mean ± sd (in points) of all seeds at
    each initialisation's chosen learning rate, the difference of the means, and the floor."""
    lines = ["| task | initialisation | learning rate (dev mean per grid value) | seeds | dev | test | "
             "test: pre-trained − random |",
             "|---|---|---|---|---|---|---|"]
    for setting, found, bar in results(out):
        diff = statistics.fmean(found["pretrained"]["test"]) - statistics.fmean(found["random"]["test"])
        for init in INITS:
            r = found[init]
            grid = ", ".join(f"{lr:g}: {100 * v:.1f}" for lr, v in sorted(r["grid"].items()))
            lines.append(f"| {setting.title} ({setting.metric}) | {init} | **{r['lr']:g}** ({grid}) | "
                         f"{len(r['dev'])} | {_mean_sd(r['dev'])} | {_mean_sd(r['test'])} | "
                         f"{f'{100 * diff:+.1f}' if init == 'pretrained' else ''} |")
        lines.append(_floor_row(setting, found, bar))
    return "\n".join(lines)


def _floor_row(setting: Setting, found: Dict[str, Dict], bar: Dict) -> str:
    if "error" in bar:
        return f"| {setting.title} ({setting.metric}) | floor not computed: {bar['error']} | | | | | |"
    test = bar.get("test", {}).get(setting.metric)
    above = (f"pre-trained − floor: {100 * (statistics.fmean(found['pretrained']['test']) - test):+.1f}"
             if test is not None and found["pretrained"]["test"] else "")
    return (f"| {setting.title} ({setting.metric}) | floor: {bar['description']} | – | – | "
            f"{_mean_sd([bar['dev'][setting.metric]])} | {_mean_sd([test] if test is not None else [])} | {above} |")


def floor_findings(out: Path) -> List[str]:
    """A sentence for each setting whose pre-trained encoder does not beat its floor on test."""
    lines = []
    for setting, found, bar in results(out):
        test, pretrained = bar.get("test", {}).get(setting.metric), found["pretrained"]["test"]
        if test is not None and pretrained and statistics.fmean(pretrained) <= test:
            lines.append(f"- **{setting.title}**: the pre-trained encoder's test {setting.metric}, "
                         f"{100 * statistics.fmean(pretrained):.1f}, does not beat its floor's, {100 * test:.1f} "
                         f"({bar['description']}): not yet useful on this task.")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="fine-tune a model and its random twin on a language's tasks")
    r.add_argument("--model", required=True, help="the pre-trained model directory")
    r.add_argument("--lang", required=True, choices=sorted(SETTINGS))
    r.add_argument("--output", required=True)
    r.add_argument("--seeds", type=int, default=5)
    r.add_argument("--grid-seeds", type=int, default=1, help="seeds per grid value for choosing the rate")
    r.add_argument("--grid", type=float, nargs="+", help="learning rates to choose from (default: the setting's)")
    r.add_argument("--only", nargs="+", help="only these settings (run directory names)")
    r.add_argument("--jobs", type=int, default=2, help="fine-tuning runs at once (default 2)")
    p = sub.add_parser("report", help="print the table of a finished (or partial) evaluation")
    p.add_argument("output")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args)
    findings = floor_findings(Path(args.output))
    print("\n".join([report_table(Path(args.output)), *([""] + findings if findings else [])]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
