"""The controlled runs behind docs/pretraining.md, and the document itself.

    python -m studies.pretraining ablation [--output output/study]   # knowledge masking alone, one change a run
    python -m studies.pretraining finetune-check [--output output/study]
    python -m studies.pretraining report [--output output/study] [--doc docs/pretraining.md]

`ablation` pre-trains knowledge masking alone on the demo corpus, 1,500 steps a run, changing one
setting at a time from the demo's release settings, with `python -m ernie.pretrain` and with the
Hugging Face reference (`scripts/hf_reference_pretrain.py`) on the same batches. `finetune-check`
fine-tunes one of those models and its random twin on Brown genre with `python -m ernie.finetune`
and with an independent PyTorch loop (`scripts/hf_reference_finetune.py`). `report` reads every
run's files (and those of the recipes and of `studies/downstream.py`, where they exist) and writes
the document. Runs whose outputs exist are skipped, so a killed study continues where it stopped.
About 2 hours on 2 CPU cores (`scripts/pretraining_study.sh` runs everything, recipes included).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from ernie.pretrain.config import load_config
from ernie.pretrain.data import batch_fill
from ernie.pretrain.log import read_log, summary
from ernie.pretrain.schedule import schedule_from_config
from studies import downstream
from studies.jobs import ROOT, run_all, run_python
from studies.template import TEMPLATES, fill, write_report

RUN_LIST = ROOT / "configs" / "studies" / "pretraining.yaml"
STUDY = yaml.safe_load(RUN_LIST.read_text(encoding="utf-8"))
ABLATION = STUDY["ablation"]
STEPS = ABLATION["steps"]
RELEASE = ABLATION["release"]
CHECK = STUDY["finetune_check"]


@dataclass
class Run:
    name: str
    change: str                       # what differs from the run it is compared with
    base: Optional[str] = None        # the run it changes (None: the release settings)
    optimization: Dict = field(default_factory=dict)
    model: Dict = field(default_factory=dict)
    mask_ratio: Optional[float] = None
    batch_tokens: Optional[int] = None
    dropout: Optional[float] = None
    reference: bool = False           # trained by the Hugging Face reference instead


RUNS = [Run(**entry) for entry in ABLATION["runs"]]
BY_NAME = {r.name: r for r in RUNS}


def resolved(run: Run) -> dict:
    """The full settings of a run: its base's, with its own changes on top."""
    if run.base is None:
        settings = json.loads(json.dumps({**RELEASE, "dropout": None}))
    else:
        settings = resolved(BY_NAME[run.base])
    settings["model"].update(run.model)
    settings["optimization"].update(run.optimization)
    for key in ("mask_ratio", "batch_tokens", "dropout"):
        if getattr(run, key) is not None:
            settings[key] = getattr(run, key)
    return settings


def shards(out: Path, mask_ratio: float) -> Path:
    """The demo corpus's shards with the given masking ratio (the demo's vocabulary)."""
    data = yaml.safe_load((ROOT / ABLATION["data"]).read_text(encoding="utf-8"))
    vocab = ROOT / data["vocab"]
    if not vocab.is_file():
        run_python(["-m", "data_gen", "build-vocab", "--input", data["input"], "--size", "8000", "--lang", "en",
                    "--output", str(vocab)], log=out / "vocab.log")
    target = out / f"shards-mask-{mask_ratio:g}"
    options = data.get("task_options", {})
    config = {**data, "output": str(target), "task_options": {
        **options, "knowledge_masking": {**options.get("knowledge_masking", {}), "mask_ratio": mask_ratio}}}
    path = out / f"data-mask-{mask_ratio:g}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    run_python(["-m", "data_gen", "make", "--config", str(path)], log=out / f"make-mask-{mask_ratio:g}.log")
    return target


def ablation(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for run in RUNS:
        run_dir = out / "ablation" / run.name
        if (run_dir / "model" / "params.safetensors").is_file():
            continue
        settings = resolved(run)
        model = yaml.safe_load((ROOT / settings["model"]["preset"]).read_text(encoding="utf-8"))
        model.update({k: v for k, v in settings["model"].items() if k != "preset"})
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "model.yaml").write_text(yaml.safe_dump(model, sort_keys=False), encoding="utf-8")
        config = {"model": str(run_dir / "model.yaml"), "data": str(shards(out, settings["mask_ratio"])),
                  "output": str(run_dir), "seed": 1, "batch_tokens": settings["batch_tokens"], "log_every": 10,
                  "checkpoint_every": 100000, "optimization": settings["optimization"],
                  "schedule": {"strategy": "continual", "stages": [["knowledge_masking"]],
                               "iterations_per_task": STEPS}}
        if settings["dropout"] is not None:
            config["dropout"] = settings["dropout"]
        (run_dir / "study.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        print(f"ablation: {run.name}", flush=True)
        start = time.time()
        if run.reference:
            run_python(["scripts/hf_reference_pretrain.py", "--config", str(run_dir / "study.yaml"),
                        "--output", str(run_dir)], log=run_dir / "train.log")
        else:
            run_python(["-m", "ernie.pretrain", "--config", str(run_dir / "study.yaml"), "--quiet"],
                       log=run_dir / "train.log")
        (run_dir / "wall_s").write_text(f"{time.time() - start:.0f}\n")


# ---- fine-tuning check ---------------------------------------------------------------------------



def finetune_check(out: Path) -> None:
    model = out / "ablation" / CHECK["model"] / "model"
    if not (ROOT / CHECK["data"]).is_dir():
        run_python(["-m", "data_gen", "fetch", "brown-genre", "--dir", str(Path(CHECK["data"]).parent)],
                   log=out / "fetch.log")
    jobs = []

    def job(run_dir: Path, args: List[str]):
        def run():
            if not (run_dir / "metrics.json").is_file():
                print(f"finetune-check: {run_dir.name}", flush=True)
                run_python(args, log=run_dir.parent / f"{run_dir.name}.log", threads=1)
        return run

    for init in ("pretrained", "random"):
        source = ["--init-model", str(model)] if init == "pretrained" else \
            ["--vocab", str(model / "vocab.txt"), "--model-config", str(model / "ernie_config.json")]
        for impl, extra in (("paddle", []), ("paddle-grouped", ["--set", "group_by_length=true"])):
            run_dir = out / "finetune-check" / f"{impl}-{init}"
            jobs.append(job(run_dir, ["-m", "ernie.finetune", "--task", "brown-genre", "--data", CHECK["data"], *source,
                                   "--output", str(run_dir), "--seeds", str(CHECK["seeds"]), "--quiet",
                                   "--set", f"max_train_examples={CHECK['examples']}",
                                   "--set", f"epochs={CHECK['epochs']}", "--set", f"learning_rate={CHECK['lr']}",
                                   "--set", f"max_seq_len={CHECK['max_seq_len']}", "--set", "batch_size=32", *extra]))
        run_dir = out / "finetune-check" / f"hf-{init}"
        jobs.append(job(run_dir, ["scripts/hf_reference_finetune.py", "--model", str(model), "--data", CHECK["data"],
                               "--output", str(run_dir), "--seeds", str(CHECK["seeds"]),
                               "--max-train-examples", str(CHECK["examples"]), "--epochs", str(CHECK["epochs"]),
                               "--learning-rate", str(CHECK["lr"]), "--max-seq-len", str(CHECK["max_seq_len"]),
                               "--batch-size", "32", *(["--random"] if init == "random" else [])]))
    run_all(jobs, "finetune-check")


# ---- report --------------------------------------------------------------------------------------



def _read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _entropy(run_dir: Path) -> float:
    config = yaml.safe_load((run_dir / "study.yaml").read_text(encoding="utf-8"))
    return _read_json(Path(config["data"]) / "manifest.json")["unigram_entropy"]["nats"]


@dataclass
class Measured:
    loss: float          # final knowledge-masking loss
    share: float         # of the unigram entropy
    steps: int
    tokens: int          # padded tokens the batches held (steps x batch_tokens)
    wall: int            # seconds, start to model
    rate: float          # tokens/s (real tokens), mean over the logged windows after the first 10%
    curve: List          # (step, loss) of every logged window


def _rate(records) -> float:
    """A run's tokens/s (real tokens): the mean over its logged windows after the first 10%."""
    return statistics.fmean(r["tokens_per_s"] for r in records[len(records) // 10:])


def _wall(run_dir: Path) -> Optional[int]:
    """Seconds from the corpus on disk to the model, where the run's wall_s records them."""
    return int((run_dir / "wall_s").read_text()) if (run_dir / "wall_s").is_file() else None


def ablation_results(out: Path) -> Dict[str, Measured]:
    found = {}
    for run in RUNS:
        run_dir = out / "ablation" / run.name
        if not (run_dir / "wall_s").is_file():
            continue
        records = read_log(run_dir)
        values = summary(records, _entropy(run_dir))
        config = yaml.safe_load((run_dir / "study.yaml").read_text(encoding="utf-8"))
        found[run.name] = Measured(values["final_loss"]["knowledge_masking"], values["knowledge_masking_over_entropy"],
                                   records[-1]["step"], records[-1]["step"] * config["batch_tokens"],
                                   _wall(run_dir),
                                   _rate(records),
                                   [(r["step"], r["knowledge_masking/loss"]) for r in records])
    return found


def ablation_table(results: Dict[str, Measured]) -> List[str]:
    lines = ["| run | change (against the run in brackets) | final loss | × entropy | effect | "
             "tokens in batches | wall time | tokens/s |", "|---|---|---|---|---|---|---|---|"]
    for run in RUNS:
        if run.name not in results:
            continue
        m = results[run.name]
        base = results.get(run.base) if run.base else None
        effect = f"{m.loss - base.loss:+.3f}" if base else ""
        lines.append(f"| {run.name} | {run.change}{f' ({run.base})' if run.base else ''} | {m.loss:.3f} | "
                     f"{m.share:.3f} | {effect} | {m.tokens / 1e6:.1f} M | {m.wall / 60:.1f} min | {m.rate:,.0f} |")
    return lines


def ablation_plot(results: Dict[str, Measured], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for name, m in results.items():
        steps, losses = zip(*m.curve)
        axes[0].plot(steps, losses, label=name, linewidth=1.2)
        seconds = [s / m.steps * m.wall for s in steps]  # steps take about equal time within a run
        axes[1].plot([t / 60 for t in seconds], losses, label=name, linewidth=1.2)
    entropy = next(iter(results.values())).loss / next(iter(results.values())).share
    for ax, xlabel in zip(axes, ("step", "minutes (2 CPU cores)")):
        ax.axhline(entropy, color="grey", linestyle="--", linewidth=0.8)
        ax.annotate("unigram entropy", (0.99, entropy), xycoords=("axes fraction", "data"), ha="right",
                    va="bottom", fontsize=8, color="grey")
        ax.set_xlabel(xlabel)
        ax.set_ylim(entropy - 1.0, entropy + 1.0)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("knowledge-masking loss (nats, mean of each 10-step window)")
    axes[1].legend(fontsize=7, loc="upper right")
    fig.suptitle("Knowledge masking alone on the demo corpus, 1,500 steps a run")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def check_history(out: Path, scores: Dict) -> List[str]:
    """How the check's first run went wrong, with the length-by-genre figures read from the data."""
    from ernie.finetune.tasks import get_task
    from ernie.finetune.trainer import read_data
    from ernie_common.tokenization import FullTokenizer
    model = out / "ablation" / CHECK["model"] / "model"
    tokenizer = FullTokenizer(model / "vocab.txt", do_lower_case=True)
    data = read_data(get_task("brown-genre"), ROOT / CHECK["data"], CHECK["examples"])
    train, dev_labels = data.train, [example.label for example in data.dev]
    majority = max(dev_labels.count(label) for label in set(dev_labels)) / len(dev_labels)
    lengths: Dict[str, List[int]] = {}
    for example in train:
        n = len(tokenizer.encode(example.text_a)) + 2  # with [CLS] and [SEP]
        lengths.setdefault(example.label, []).append(min(CHECK["max_seq_len"], n))
    mean = {label: statistics.fmean(v) for label, v in lengths.items()}
    full = {label: sum(n == CHECK["max_seq_len"] for n in v) / len(v) for label, v in lengths.items()}
    short, long = min(mean, key=mean.get), max(mean, key=mean.get)
    few, many = min(full, key=full.get), max(full, key=full.get)
    grouped = [a - b for a, b in zip(scores["paddle-grouped", "pretrained"], scores["paddle-grouped", "random"])]
    return fill(TEMPLATES / "pretraining_check_history.md", {
        "grouped_gap": f"{100 * statistics.fmean(grouped):+.1f}", "passages": f"{len(train):,}",
        "short": short.replace("_", " "), "short_mean": f"{mean[short]:.0f}",
        "long": long.replace("_", " "), "long_mean": f"{mean[long]:.0f}",
        "many": many.replace("_", " "), "many_full": f"{100 * full[many]:.0f}",
        "few": few.replace("_", " "), "few_full": f"{100 * full[few]:.0f}", "max_seq_len": str(CHECK["max_seq_len"]),
        "grouped_random": f"{100 * statistics.fmean(scores['paddle-grouped', 'random']):.1f}",
        "majority": f"{100 * majority:.1f}", "random": f"{100 * statistics.fmean(scores['paddle', 'random']):.1f}",
    }).strip().splitlines()


CHECK_IMPLS = (("paddle", "`ernie.finetune` (Paddle static program), random batches (the default)"),
               ("paddle-grouped", "`ernie.finetune`, batches grouped by length (`group_by_length=true`)"),
               ("hf", "Hugging Face `ErnieForSequenceClassification`, own PyTorch loop, random batches"))


def check_scores(out: Path) -> Dict:
    """{(implementation, init): dev accuracy per seed} of the fine-tuning check's runs that exist."""
    scores = {}
    for impl, _ in CHECK_IMPLS:
        for init in ("pretrained", "random"):
            path = out / "finetune-check" / f"{impl}-{init}" / "metrics.json"
            if path.is_file():
                report = _read_json(path)
                scores[impl, init] = (report["dev_accuracy"] if impl == "hf"
                                      else [s["dev"]["acc"] for s in report["seeds"]])
    return scores


def check_table(scores: Dict) -> List[str]:
    lines = ["| fine-tuning implementation | pre-trained | random | pre-trained − random, per seed |",
             "|---|---|---|---|"]
    for impl, title in CHECK_IMPLS:
        if (impl, "pretrained") in scores and (impl, "random") in scores:
            pre, rnd = scores[impl, "pretrained"], scores[impl, "random"]
            lines.append(f"| {title} | {downstream.mean_sd(pre)} | {downstream.mean_sd(rnd)} | "
                         f"{downstream.mean_sd([a - b for a, b in zip(pre, rnd)], signed=True)} |")
    return lines


def recipe_results(out: Path) -> Dict[str, Dict]:
    found = {}
    for recipe in STUDY["recipes"]:
        name, config_path, minutes, target = (recipe[k] for k in ("name", "config", "minutes", "target"))
        config = yaml.safe_load((ROOT / config_path).read_text(encoding="utf-8"))
        run_dir = ROOT / config["output"]
        if not (run_dir / "summary.json").is_file():
            continue
        manifest = _read_json(ROOT / config["data"] / "manifest.json")
        model = yaml.safe_load((ROOT / config["model"]).read_text(encoding="utf-8"))
        found[name] = {"summary": _read_json(run_dir / "summary.json"), "config": config,
                       "config_path": ROOT / config_path, "minutes": minutes,
                       "target": target, "manifest": manifest, "model": model, "run_dir": run_dir,
                       "wall": _wall(run_dir),
                       # how the run went, where it did not go as the recipe says (written beside it by hand)
                       "note": (run_dir / "note").read_text().strip() if (run_dir / "note").is_file() else ""}
    return found


def recipes_table(recipes: Dict[str, Dict]) -> List[str]:
    lines = ["| recipe | model | corpus tokens | steps x batch | wall time (budget) | final knowledge-masking loss | "
             "× unigram entropy (target) | other tasks' final losses |", "|---|---|---|---|---|---|---|---|"]
    for name, r in recipes.items():
        s, m = r["summary"], r["model"]
        wall = f"{r['wall'] / 60:.1f} min" if r["wall"] else "–"
        others = ", ".join(f"{t} {v:.2f}" for t, v in s["final_loss"].items() if t != "knowledge_masking")
        lines.append(f"| {name} | {m['num_hidden_layers']} x {m['hidden_size']} | "
                     f"{r['manifest']['corpus']['tokens'] / 1e6:.2f} M | "
                     f"{s['steps']:,} x {r['config']['batch_tokens']:,} | "
                     f"{wall} ({r['minutes']} min) | {s['final_loss']['knowledge_masking']:.3f} "
                     f"(entropy {s['unigram_entropy']:.3f}) | **{s['knowledge_masking_over_entropy']:.3f}** "
                     f"(≤ {r['target']}) | {others} |")
    notes = [f"- {name}: {r['note']}" for name, r in recipes.items() if r["note"]]
    missing = [r["name"] for r in STUDY["recipes"] if r["name"] not in recipes]
    if missing:
        notes.append(f"- not run for this page yet: {', '.join(missing)}.")
    return lines + ([""] + notes if notes else [])


def _noam_at(step: int) -> float:
    from ernie.model.optimization import noam
    settings = RELEASE["optimization"]
    return noam(settings["learning_rate"], settings["warmup_steps"], step)


def _loss_at_seconds(m: Measured, seconds: float) -> float:
    """The run's logged loss at `seconds` into it (steps taking equal time within a run)."""
    reached = [loss for step, loss in m.curve if step / m.steps * m.wall <= seconds]
    return reached[-1] if reached else m.curve[0][1]


PLATEAU = 0.95  # a knowledge-masking loss above this share of the unigram entropy: still on the plateau
AGREE = 0.05    # two implementations whose final losses are this close (nats) agree


def _plateau(m: Measured) -> str:
    return "on the unigram plateau" if m.share > PLATEAU else "off the unigram plateau"


def _change(effect: float) -> str:
    return "lower" if effect < 0 else "higher"


def ablation_findings(r: Dict[str, Measured]) -> List[str]:
    """What the ablation measured, each finding with the figures of the runs it rests on; every
    word of judgement (agree or not, helps or not, on the plateau or off it) is decided by those
    figures, with the thresholds above."""
    def eff(name):
        return r[name].loss - r[BY_NAME[name].base].loss

    def agreement(ours: Measured, reference: Measured) -> str:
        gap = abs(ours.loss - reference.loss)
        return (f"**The two implementations agree** ({gap:.3f} nats apart)" if gap <= AGREE else
                f"**The two implementations disagree** ({gap:.3f} nats apart)")

    lines = []
    if {"release", "release-hf"} <= set(r):
        a, b = r["release"], r["release-hf"]
        lines.append(f"- {agreement(a, b)} with the release settings: this framework ends at {a.loss:.3f} nats "
                     f"({a.share:.3f} x entropy, {_plateau(a)}), Hugging Face's ERNIE on the same batches at "
                     f"{b.loss:.3f} ({b.share:.3f}, {_plateau(b)}).")
    if {"linear-5e-4", "linear-1e-3", "linear-2e-3"} <= set(r):
        lines.append(f"- **The learning rate.** Noam with {RELEASE['optimization']['warmup_steps']} warm-up steps "
                     f"from a peak of {RELEASE['optimization']['learning_rate']:g} is down to {_noam_at(STEPS):.1e} "
                     f"at step {STEPS:,}. Linear warm-up and decay to 0 over the run instead: "
                     f"{eff('linear-5e-4'):+.3f} nats; a peak of 1e-3: {eff('linear-1e-3'):+.3f} more; a peak of "
                     f"2e-3: {eff('linear-2e-3'):+.3f} against 5e-4's ({_change(eff('linear-2e-3'))}).")
    if {"no-dropout", "mask-40"} <= set(r):
        lines.append(f"- **Denser signal.** No dropout while pre-training: {eff('no-dropout'):+.3f} "
                     f"({_change(eff('no-dropout'))}); 40% of the units masked instead of 15% (2.7 times the "
                     f"predictions per step, each with less context): {eff('mask-40'):+.3f} "
                     f"({_change(eff('mask-40'))}), measured on the harder predictions.")
    if {"mask-40", "mask-40-hf"} <= set(r):
        a, b = r["mask-40"], r["mask-40-hf"]
        lines.append(f"- {agreement(a, b)} with those settings: Hugging Face's ERNIE ends at {b.loss:.3f} "
                     f"({b.share:.3f}) and this framework at {a.loss:.3f} ({a.share:.3f}); this framework ran "
                     f"{a.rate / b.rate:.2f}x the reference's tokens/s.")
    if {"mask-40", "2-layers", "micro"} <= set(r):
        a, b, c = r["mask-40"], r["2-layers"], r["micro"]
        spread = max(x.loss for x in (a, b, c)) - min(x.loss for x in (a, b, c))
        lines.append(f"- **Model size at equal steps.** At {STEPS:,} steps: 4 x 256 {a.loss:.3f}, 2 x 256 "
                     f"{b.loss:.3f}, 4 x 128 {c.loss:.3f} ({spread:.3f} nats from best to worst); the micro "
                     f"model's steps take {a.wall / c.wall:.1f}x less time.")
    if {"micro", "micro-2048", "micro-4096"} <= set(r):
        a, b, c = r["micro"], r["micro-2048"], r["micro-4096"]
        at_equal_time = _loss_at_seconds(c, a.wall)
        lines.append(f"- **Larger batches.** Micro with batches of 1,024 / 2,048 / 4,096 tokens: {a.loss:.3f} / "
                     f"{b.loss:.3f} / {c.loss:.3f} after the same {STEPS:,} steps, in {a.wall / 60:.1f} / "
                     f"{b.wall / 60:.1f} / {c.wall / 60:.1f} minutes. When the 1,024-token run ended, the "
                     f"4,096-token run's logged loss was {at_equal_time:.3f}: "
                     + ("ahead at equal time too." if at_equal_time < a.loss else
                        "behind at equal time, so runs this short show the larger batches paying per step, not "
                        "per minute."))
    if "no-task-id" in r:
        lines.append(f"- **The task embedding.** Removing it: {eff('no-task-id'):+.3f} "
                     f"({'within' if abs(eff('no-task-id')) <= AGREE else 'outside'} {AGREE} nats).")
    if {"release", "micro-4096"} <= set(r):
        a, b = r["release"], r["micro-4096"]
        lines.append(f"- **Together.** From the release settings ({a.share:.3f} x entropy in {a.wall / 60:.1f} "
                     f"minutes) to micro with the recipe's settings ({b.share:.3f} in {b.wall / 60:.1f} minutes).")
    lines += ["", *_demo_allocation()]
    return lines


def _demo_allocation() -> List[str]:
    """The release demo's continual allocation against the recipe's, from the schedule module."""
    from ernie.pretrain.schedule import build_schedule
    stages = [["knowledge_masking"], ["capitalization"], ["token_document"], ["sentence_reordering"],
              ["discourse_relation"]]
    # the release: 200 steps of its own per task (its reordering and discourse steps also switched
    # on the token-level losses, outside the budgets)
    old = build_schedule("continual_multitask", stages, {t[0]: 200 for t in stages}, joint_token_tasks=False)
    new = schedule_from_config(yaml.safe_load((ROOT / "configs/pretrain/demo_en.yaml").read_text())["schedule"])
    return [f"**The demo's allocation.** The release demo gave knowledge masking {old.iterations('knowledge_masking')} "
            f"steps of its own out of {old.total_steps:,} steps of 1,024 tokens, "
            f"{old.stages[0].allocation['knowledge_masking']} of them in its own stage, each task on its own noam "
            f"schedule from a peak of 5e-4 with 50 warm-up steps. The recipe's demo has its loss on for "
            f"{new.loss_on_steps()['knowledge_masking']:,} of {new.total_steps:,} steps of 4,096 tokens "
            f"({new.stages[0].allocation['knowledge_masking']} in its own stage)."]




def length_pool_text(out: Path, recipes: Dict[str, Dict]) -> List[str]:
    """A recipe against its own run with batches read one at a time (same config otherwise)."""
    lines, shown = [], []
    for name, other in STUDY["without_pools"].items():
        run_dir = out / other
        if name not in recipes or not (run_dir / "summary.json").is_file():
            continue
        pooled, single = recipes[name], _read_json(run_dir / "summary.json")
        mine, theirs = (load_config(path).training_settings()
                        for path in (pooled["config_path"], run_dir / "config.yaml"))
        differs = sorted(k for k in set(mine) | set(theirs) if k != "length_pool" and mine.get(k) != theirs.get(k))
        rates = [_rate(read_log(directory)) for directory in (pooled["run_dir"], run_dir)]
        wall = _wall(run_dir)
        shown.append(name)
        lines.append(
            f"- **{name}**, batches cut from pools of {pooled['config']['length_pool']} batches' worth of examples "
            f"sorted by length (`length_pool`, `ernie.pretrain.data`) against batches read one at a time: final "
            f"knowledge-masking loss {pooled['summary']['final_loss']['knowledge_masking']:.3f} "
            f"({pooled['summary']['knowledge_masking_over_entropy']:.3f} x entropy) against "
            f"{single['final_loss']['knowledge_masking']:.3f} ({single['knowledge_masking_over_entropy']:.3f}), "
            f"with {rates[0]:,.0f} against {rates[1]:,.0f} real tokens/s"
            + (f", in {pooled['wall'] / 60:.1f} against {wall / 60:.1f} minutes" if pooled["wall"] and wall else "")
            + (f" (the runs' configs also differ in {differs})" if differs else
               " (the configs differ in nothing else)") + ".")
    if shown:  # the fill of batches, measured on the shards of the first recipe compared
        name = shown[0]
        config = recipes[name]["config"]
        fill = {pool: batch_fill(ROOT / config["data"], config["batch_tokens"], 300, pool)["fill"]
                for pool in (1, config["length_pool"])}
        lines = [f"**Length pools.** Read one batch at a time, {name}'s batches of knowledge-masking segments "
                 f"hold {fill[1]:.0%} real tokens, the rest padding; cut from length-sorted pools of "
                 f"{config['length_pool']}, {fill[config['length_pool']]:.0%} (300 batches; "
                 f"`python benchmarks/bench_batching.py {config['data']}`). The same recipe both ways:", "", *lines]
    return lines


def check_text(out: Path, scores: Dict) -> List[str]:
    if not all((impl, init) in scores for impl in ("paddle", "hf") for init in ("pretrained", "random")):
        return ["The check has not run to the end yet (`python -m studies.pretraining finetune-check`)."]
    diffs = {impl: [a - b for a, b in zip(scores[impl, "pretrained"], scores[impl, "random"])]
             for impl in ("paddle", "hf")}
    means = {impl: statistics.fmean(d) for impl, d in diffs.items()}
    spread = sum(statistics.stdev(d) if len(d) > 1 else 0.0 for d in diffs.values())
    agree = abs(means["paddle"] - means["hf"]) <= spread
    lines = [f"Pre-trained minus random: {100 * means['paddle']:+.1f} points here, {100 * means['hf']:+.1f} in the "
              f"reference; the difference between the two, {100 * abs(means['paddle'] - means['hf']):.1f} points, is "
              + ("within" if agree else "**outside**") + f" the seeds' spread (the two standard deviations added: "
              f"{100 * spread:.1f}). " + ("The fine-tuning path is not where the gain was lost." if agree else
                                          "The fine-tuning path needs a closer look.")]
    if ("paddle-grouped", "random") in scores:
        lines += ["", *check_history(out, scores)]
    return lines


def machine_text(recipes: Dict[str, Dict]) -> str:
    """Where the recipes ran, as their summary.json records it (runs before it did say nothing)."""
    machines = sorted({r["summary"]["machine"] for r in recipes.values() if "machine" in r["summary"]})
    return (f"The machine, as the recipes' runs record it: {'; '.join(machines)}." if machines else
            "The machine is not recorded by these runs (their summary.json predates the record).")


def report(out: Path, doc: Path) -> None:
    results = ablation_results(out)
    scores = check_scores(out)
    recipes = recipe_results(out)
    sections = {"recipes": "", "ablation": "", "check": "", "downstream": ""}
    if recipes:
        from ernie.plot import plot_run
        plots = []
        for name, r in recipes.items():
            (doc.parent / f"pretraining_{name}.png").write_bytes(plot_run(r["run_dir"]).read_bytes())
            plots.append(f"![{name}: pre-training losses](pretraining_{name}.png)")
        sections["recipes"] = fill(TEMPLATES / "pretraining_recipes.md", {
            "table": "\n".join(recipes_table(recipes)), "plots": "\n".join(plots),
            "pools": "\n".join(length_pool_text(out, recipes))})
    if results:
        ablation_plot(results, doc.parent / "pretraining_ablation.png")
        sections["ablation"] = fill(TEMPLATES / "pretraining_ablation.md", {
            "table": "\n".join(ablation_table(results)), "findings": "\n".join(ablation_findings(results))})
    if scores:
        sections["check"] = fill(TEMPLATES / "pretraining_check.md", {
            "model": CHECK["model"], "examples": f"{CHECK['examples']:,}", "epochs": str(CHECK["epochs"]),
            "lr": f"{CHECK['lr']:g}", "seeds": str(CHECK["seeds"]),
            "text": "\n".join(check_text(out, scores)), "table": "\n".join(check_table(scores))})
    tables = {name: downstream.report(out / "downstream" / name, downstream.language_settings(lang))
              for name, lang in STUDY["downstream"].items() if (out / "downstream" / name).is_dir()}
    if any(t.count("\n") > 1 for t in tables.values()):
        sections["downstream"] = fill(TEMPLATES / "pretraining_downstream.md", {
            "tables": "\n\n".join(f"### {name}\n\n{table}" for name, table in tables.items())})
    write_report(doc, fill(TEMPLATES / "pretraining.md", {"machine": machine_text(recipes), **sections}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("ablation", "finetune-check", "report"))
    parser.add_argument("--output", default="output/study")
    parser.add_argument("--doc", default="docs/pretraining.md")
    args = parser.parse_args(argv)
    out = (ROOT / args.output).resolve()
    if args.command == "ablation":
        ablation(out)
    elif args.command == "finetune-check":
        finetune_check(out)
    else:
        report(out, ROOT / args.doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
