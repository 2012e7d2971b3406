"""Does pre-training pay downstream? The protocol every study compares initialisations by, and the
command that compares one pre-trained model with the same architecture from random initialisation.

Protocol (as papers compare initialisations): each initialisation gets its own best learning rate
from a small grid (1e-4, 3e-4, 1e-3 with few labels; 3e-4, 1e-3 with all, where 1e-4 is too slow
for one epoch), chosen by the dev score of the first `--grid-seeds` seeds; then the remaining
seeds run at that rate, and the report gives the mean and standard deviation of all the seeds on
dev and on test (test is never used to choose anything). Batches of 32; the setting's epochs;
linear warm-up over 10% of the steps, then linear decay. Beside the initialisations every table
has the task's floor, what no encoder at all scores on the same files and training sample
(`ernie.finetune.floors`: TF-IDF + logistic regression, or each token's most frequent tag), and
the report names every initialisation that does not beat it.

    python -m studies.downstream run --model output/small_en/pretrain/model --lang en \\
        --output output/study/downstream/small_en
    python -m studies.downstream report output/study/downstream/small_en

The settings per language are configs/studies/downstream.yaml's. `run` skips every fine-tuning run
whose metrics.json exists and resumes the others (`ernie.finetune --resume`), so a killed
evaluation continues with the seed it was on. Files: OUTPUT/SETTING/INIT/lr-RATE/ (the grid's
seeds), lr-RATE/more/ (the other seeds at the chosen rate; lr-RATE/more-N/ from seed N, where a
study asked for more), OUTPUT/SETTING/floor.json.
Data: `python -m data_gen fetch NAME --dir data`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

from ernie_common.cli import number_ranges
from ernie_common.fileio import atomic_write_text
from studies.jobs import ROOT, job_threads, run_all, run_python

GRID = {"few": (1e-4, 3e-4, 1e-3), "full": (3e-4, 1e-3)}
SETTINGS_FILE = ROOT / "configs" / "studies" / "downstream.yaml"


@dataclass(frozen=True)
class Setting:
    name: str                      # the run directory
    task: str                      # ernie.finetune's task name
    data: str                      # directory of the task's files, from the repository root
    train_examples: Optional[int]  # None: the full training set
    epochs: int

    @property
    def data_dir(self) -> Path:
        return ROOT / self.data

    @property
    def metric(self) -> str:
        from ernie.finetune.tasks import get_task
        return get_task(self.task).main_metric

    @property
    def grid(self) -> Tuple[float, ...]:
        return GRID["full" if self.train_examples is None else "few"]

    @property
    def title(self) -> str:
        size = "full training set" if self.train_examples is None else f"{self.train_examples:,} training examples"
        return f"{self.task}, {size}"


def settings_from(entries, source: str) -> List[Setting]:
    """Settings from a YAML list of mappings (name, task, data, train_examples, epochs)."""
    fields = ("name", "task", "data", "train_examples", "epochs")
    if not isinstance(entries, list):
        raise SystemExit(f"{source}: expected a list of settings, got {type(entries).__name__}")
    found = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != set(fields):
            raise SystemExit(f"{source}: setting {i + 1} must have exactly the keys {list(fields)}, got {entry!r}")
        found.append(Setting(**entry))
    return found


def language_settings(lang: str) -> List[Setting]:
    table = yaml.safe_load(SETTINGS_FILE.read_text(encoding="utf-8"))
    if lang not in table:
        raise SystemExit(f"{SETTINGS_FILE}: no settings for language {lang!r} (it has {sorted(table)})")
    return settings_from(table[lang], f"{SETTINGS_FILE}:{lang}")


@dataclass(frozen=True)
class Init:
    """An initialisation: its name (the run directory), the arguments that give it to
    `ernie.finetune`, and settings it fine-tunes with beside the protocol's (`key=value`, e.g.
    `pooling=mean`)."""
    name: str
    source: Tuple[str, ...]
    settings: Tuple[str, ...] = ()

    @staticmethod
    def pretrained(name: str, model: Path, settings: Sequence[str] = ()) -> "Init":
        return Init(name, ("--init-model", str(model)), tuple(settings))

    @staticmethod
    def random_twin(name: str, model: Path, settings: Sequence[str] = ()) -> "Init":
        """The architecture and vocabulary of `model`, from random initialisation."""
        return Init(name, ("--vocab", str(model / "vocab.txt"), "--model-config", str(model / "ernie_config.json")),
                    tuple(settings))


GRID_FILE = "grid.json"  # OUT/SETTING/INIT/: the rates an initialisation chooses from


def _lr_name(lr: float) -> str:
    return f"lr-{lr:g}"


def _finetune(setting: Setting, init: Init, lr: float, first_seed: int, seeds: int, out: Path, threads: int) -> dict:
    metrics = out / "metrics.json"
    if not metrics.is_file():
        limit = "null" if setting.train_examples is None else str(setting.train_examples)
        print(f"{setting.name} {init.name} lr {lr:g} seeds {first_seed}-{first_seed + seeds - 1}", flush=True)
        run_python(["-m", "ernie.finetune", "--task", setting.task, "--data", str(setting.data_dir), *init.source,
                    "--output", str(out), "--seeds", str(seeds), "--first-seed", str(first_seed), "--quiet", "--resume",
                    "--set", f"learning_rate={lr}", "--set", f"epochs={setting.epochs}",
                    "--set", f"max_train_examples={limit}", "--set", "batch_size=32",
                    # the protocol's schedule, whatever the task's config says (MSRA-NER's follows
                    # the released scripts for base models: no warm-up)
                    "--set", "warmup_proportion=0.1", "--set", "lr_schedule=linear",
                    *(arg for override in init.settings for arg in ("--set", override))],
                   log=out / "finetune.log", threads=threads)
    return json.loads(metrics.read_text(encoding="utf-8"))


def _dev_mean(report: dict, metric: str) -> float:
    return statistics.fmean(s["dev"][metric] for s in report["seeds"])


def fetch_missing(settings: Sequence[Setting], log_dir: Path) -> None:
    """The settings' labelled sets that are not on this machine, fetched from the registries
    (`python -m data_gen fetch NAME`, NAME their folder's): a study's records come to a new
    machine without them."""
    for data in dict.fromkeys(s.data for s in settings):
        if not (ROOT / data).is_dir():
            name = Path(data).name
            run_python(["-m", "data_gen", "fetch", name, "--dir", str((ROOT / data).parent)],
                       log=log_dir / f"fetch-{name}.log")


def evaluate(setting: Setting, init: Init, out: Path, seeds: int = 5, grid_seeds: int = 1,
             grid: Optional[Sequence[float]] = None, threads: int = 1) -> None:
    """One initialisation on one setting: the grid, then the remaining seeds at the chosen rate;
    its files under OUT/SETTING/INIT."""
    base = out / setting.name / init.name
    rates = list(grid or setting.grid)
    base.mkdir(parents=True, exist_ok=True)
    atomic_write_text(base / GRID_FILE, json.dumps(rates) + "\n")  # `collect` chooses only once all have run
    found = {lr: _finetune(setting, init, lr, 1, grid_seeds, base / _lr_name(lr), threads) for lr in rates}
    best = max(found, key=lambda lr: _dev_mean(found[lr], setting.metric))
    if seeds > grid_seeds:
        _finetune(setting, init, best, grid_seeds + 1, seeds - grid_seeds, base / _lr_name(best) / "more", threads)


def probe(setting: Setting, init: Init, out: Path, threads: int = 1) -> dict:
    """The linear probe of the initialisation's frozen sentence vectors on the setting's files and
    training sample (`ernie.finetune.probe`; random initialisation at seed 1), once: OUT/SETTING/
    INIT/probe.json."""
    path = _probe_path(out, setting, init.name)
    if not path.is_file():
        limit = "null" if setting.train_examples is None else str(setting.train_examples)
        print(f"{setting.name} {init.name} linear probe", flush=True)
        run_python(["-m", "ernie.finetune.probe", "--task", setting.task, "--data", str(setting.data_dir),
                    *init.source, "--output", str(path), "--set", f"max_train_examples={limit}",
                    *(arg for override in init.settings for arg in ("--set", override))],
                   log=path.with_suffix(".log"), threads=threads)
    return json.loads(path.read_text(encoding="utf-8"))


def _probe_path(out: Path, setting: Setting, init: str) -> Path:
    return out / setting.name / init / "probe.json"


def probe_result(out: Path, setting: Setting, init: str) -> Optional[Dict]:
    """The recorded linear probe of an initialisation on a setting, or None."""
    path = _probe_path(out, setting, init)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _first_seed(more: Path) -> int:
    """The first seed of a run of more seeds: `more` (the protocol's, after the grid's) or `more-N`."""
    return int(more.name.partition("-")[2] or 0)


def more_seeds(setting: Setting, init: Init, out: Path, seeds: int, threads: int = 1) -> None:
    """Seeds at the chosen rate until there are `seeds` in all (in OUT/SETTING/INIT/lr-RATE/more-N,
    N the first new seed), for initialisations too close to tell apart with fewer."""
    found = collect(out, setting, init.name)
    if found is None:
        raise ValueError(f"{setting.name} {init.name}: no grid results to add seeds to")
    have = len(found["dev"])
    if have < seeds:
        _finetune(setting, init, found["lr"], have + 1, seeds - have,
                  out / setting.name / init.name / _lr_name(found["lr"]) / f"more-{have + 1}", threads)


def evaluate_all(settings: Sequence[Setting], inits: Sequence[Init], out: Path, parallel: int = 2, **protocol) -> None:
    """Every initialisation on every setting, `parallel` fine-tuning runs at once, each on its
    share of the cores (for models this small, faster than one run on all of them): first every
    grid, then the seeds at the chosen rates, so that an interrupted study has a whole table of
    one seed before it has spreads."""
    threads = job_threads(parallel)
    grid_only = {**protocol, "seeds": protocol.get("grid_seeds", 1)}
    for phase, what in ((grid_only, "fine-tuning (the grids)"), (protocol, "fine-tuning (the seeds)")):
        run_all([lambda s=s, i=i, p=phase: evaluate(s, i, out, threads=threads, **p) for s in settings for i in inits],
                what, parallel)


def collect(out: Path, setting: Setting, init: str) -> Optional[Dict]:
    """The chosen learning rate and every seed's scores at it, from the run's files; None until
    every rate of the grid has run (a rate chosen from part of it would be reported as chosen)."""
    base = out / setting.name / init
    grid = {float(path.parent.name[3:]): json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(base.glob("lr-*/metrics.json"))}
    if (base / GRID_FILE).is_file():
        rates = json.loads((base / GRID_FILE).read_text(encoding="utf-8"))
        grid = {lr: grid[lr] for lr in rates if lr in grid} if set(rates) <= set(grid) else {}
    if not grid:
        return None
    best = max(grid, key=lambda lr: _dev_mean(grid[lr], setting.metric))
    seeds = list(grid[best]["seeds"])
    for more in sorted((base / _lr_name(best)).glob("more*/metrics.json"), key=lambda p: _first_seed(p.parent)):
        seeds += json.loads(more.read_text(encoding="utf-8"))["seeds"]
    return {"lr": best, "grid": {lr: _dev_mean(r, setting.metric) for lr, r in grid.items()},
            "seeds": [s.get("seed", k + 1) for k, s in enumerate(seeds)],  # (in seed order, the protocol's)
            "dev": [s["dev"][setting.metric] for s in seeds],
            "test": [s["test"][setting.metric] for s in seeds if "test" in s]}


def by_seed(result: Dict, key: str = "test") -> Dict[int, float]:
    """seed -> score of a `collect` result (`key`: test or dev)."""
    return dict(zip(result["seeds"], result[key])) if len(result[key]) == len(result["seeds"]) else {}


def interval(values: Sequence[float]) -> Tuple[float, float]:
    """The mean of `values` and the half-width of its 95% interval (Student's t over them;
    infinite with one value: nothing is told apart from one seed)."""
    from scipy.stats import t
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("inf")
    return mean, float(t.ppf(0.975, len(values) - 1)) * statistics.stdev(values) / len(values) ** 0.5


def paired_difference(a: Dict, b: Dict, key: str = "test") -> Optional[Tuple[float, float, List[int]]]:
    """a's score less b's over the seeds both have (a seed is the same batch order, dropout and
    head initialisation for every initialisation, so its two runs differ by the encoder alone):
    the mean difference, the half-width of its 95% interval over those seeds, and the seeds;
    None where they share none. Two initialisations are told apart where the interval leaves 0
    out."""
    sa, sb = by_seed(a, key), by_seed(b, key)
    shared = sorted(set(sa) & set(sb))
    if not shared:
        return None
    mean, half = interval([sa[s] - sb[s] for s in shared])
    return mean, half, shared


def seeds_text(seeds: Sequence[int]) -> str:
    """[1, 2, 3, 5] -> 'seeds 1-3, 5'."""
    return ("seed " if len(seeds) == 1 else "seeds ") + number_ranges(seeds)


def difference_text(found: Optional[Tuple[float, float, List[int]]]) -> str:
    """`+1.2 ± 0.8 points (seeds 1-3): beyond the spread`, or within it."""
    if found is None:
        return "no seed in common"
    mean, half, seeds = found
    spread = "" if half == float("inf") else f" ± {100 * half:.1f}"
    return (f"{100 * mean:+.1f}{spread} points ({seeds_text(seeds)}): "
            + ("beyond the spread" if abs(mean) > half else "within the spread"))


def mean_sd(values: Sequence[float], signed: bool = False) -> str:
    """Mean ± sample standard deviation in points; one value alone (no spread to show)."""
    if not values:
        return "–"
    mean = f"{100 * statistics.fmean(values):{'+' if signed else ''}.1f}"
    return mean if len(values) == 1 else f"{mean} ± {100 * statistics.stdev(values):.1f}"


def floor(out: Path, setting: Setting) -> Dict:
    """The setting's floor on its files and training sample: OUT/SETTING/floor.json where it was
    computed from the same files, else computed now (seconds) and written there; {"error": ...}
    where the files are missing and no floor was recorded."""
    from ernie.finetune.examples import DataError
    from ernie.finetune.floors import floor_for
    from ernie.finetune.tasks import get_task
    try:
        return floor_for(get_task(setting.task), setting.data_dir, setting.train_examples,
                         out / setting.name / "floor.json")
    except DataError as err:
        return {"error": str(err)}


def results(out: Path, settings: Iterable[Setting], inits: Sequence[str]) -> Iterable[Tuple[Setting, Dict[str, Dict], Dict]]:
    """(setting, {init: collect()}, floor) of every setting that every initialisation has results for."""
    for setting in settings:
        found = {init: collect(out, setting, init) for init in inits}
        if all(found.values()):
            yield setting, found, floor(out, setting)


def comparison_table(out: Path, settings: Iterable[Setting], inits: Sequence[str], titles: Dict[str, str],
                     reference: str) -> List[str]:
    """A Markdown table: per setting, each initialisation's chosen rate (and the grid's dev means),
    seeds, dev and test (mean ± sd in points), its test difference from `reference`, and the
    floor's row."""
    lines = [f"| task | initialisation | learning rate (dev mean per grid value) | seeds | dev | test | "
             f"test − {titles[reference]} |", "|---|---|---|---|---|---|---|"]
    for setting, found, bar in results(out, settings, inits):
        task = f"{setting.title} ({setting.metric})"
        for init in inits:
            r = found[init]
            grid = ", ".join(f"{lr:g}: {100 * v:.1f}" for lr, v in sorted(r["grid"].items()))
            diff = ("" if init == reference else
                    f"{100 * (statistics.fmean(r['test']) - statistics.fmean(found[reference]['test'])):+.1f}")
            lines.append(f"| {task} | {titles[init]} | **{r['lr']:g}** ({grid}) | {len(r['dev'])} | "
                         f"{mean_sd(r['dev'])} | {mean_sd(r['test'])} | {diff} |")
        if "error" in bar:
            lines.append(f"| {task} | floor not computed: {bar['error']} | | | | | |")
        else:
            test = bar.get("test", {}).get(setting.metric)
            lines.append(f"| {task} | floor: {bar['description']} | – | – | {mean_sd([bar['dev'][setting.metric]])} | "
                         f"{mean_sd([test] if test is not None else [])} | |")
    return lines


def floor_findings(out: Path, settings: Iterable[Setting], inits: Sequence[str], titles: Dict[str, str]) -> List[str]:
    """A sentence for each initialisation that does not beat its task's floor: its mean test
    score below the floor's, or above it by no more than the 95% interval of the mean over its
    seeds (the floor is one deterministic fit: its score has no spread of its own)."""
    lines = []
    for setting, found, bar in results(out, settings, inits):
        test = bar.get("test", {}).get(setting.metric)
        for init in inits:
            scores = found[init]["test"]
            if test is None or not scores:
                continue
            mean, half = interval(scores)
            spread = "" if half == float("inf") else f" ± {100 * half:.1f}"
            shown = (f"- **{setting.title}**, {titles[init]}: test {setting.metric} {100 * mean:.1f}{spread} "
                     f"(95% interval over {len(scores)} seed(s)) against its floor's {100 * test:.1f} "
                     f"({bar['description']})")
            if mean <= test:
                lines.append(f"{shown}: does not beat it, not yet useful on this task.")
            elif mean - half <= test:
                lines.append(f"{shown}: not beyond it by more than the seeds' spread.")
    return lines


INITS = ("pretrained", "random")
TITLES = {"pretrained": "pre-trained", "random": "random initialisation"}


def report(out: Path, settings: Sequence[Setting]) -> str:
    """The pre-trained model against its random twin: the table and the floor findings."""
    findings = floor_findings(out, settings, INITS, TITLES)
    return "\n".join([*comparison_table(out, settings, INITS, TITLES, "random"), *([""] + findings if findings else [])])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies.downstream", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="fine-tune a model and its random twin on a language's tasks")
    r.add_argument("--model", required=True, help="the pre-trained model directory")
    r.add_argument("--lang", required=True, help="the settings of this language in configs/studies/downstream.yaml")
    r.add_argument("--output", required=True)
    r.add_argument("--seeds", type=int, default=5)
    r.add_argument("--grid-seeds", type=int, default=1, help="seeds per grid value for choosing the rate")
    r.add_argument("--grid", type=float, nargs="+", help="learning rates to choose from (default: the setting's)")
    r.add_argument("--only", nargs="+", help="only these settings (run directory names)")
    r.add_argument("--jobs", type=int, default=2, help="fine-tuning runs at once (default 2)")
    p = sub.add_parser("report", help="print the table of a finished (or partial) evaluation")
    p.add_argument("output")
    p.add_argument("--lang", help="the settings to look for (default: every language's)")
    args = parser.parse_args(argv)
    if args.command == "run":
        model = Path(args.model)
        settings = [s for s in language_settings(args.lang) if not args.only or s.name in args.only]
        evaluate_all(settings, [Init.pretrained("pretrained", model), Init.random_twin("random", model)],
                     Path(args.output), args.jobs, seeds=args.seeds, grid_seeds=args.grid_seeds, grid=args.grid)
        return 0
    langs = [args.lang] if args.lang else sorted(yaml.safe_load(SETTINGS_FILE.read_text(encoding="utf-8")))
    print(report(Path(args.output), [s for lang in langs for s in language_settings(lang)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
