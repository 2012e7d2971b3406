"""Table 7 of the paper on 2 CPU cores: the three strategies pre-trained from one initialisation at
equal budgets, every task's held-out loss stage by stage (forgetting), and each model against
random initialisation downstream. The variants (English as the paper ran it, Chinese) and their
runs are listed in configs/studies/table7.yaml.

    python -m studies.table7 pretrain --variant en     # the shards, then the three strategies, two at a time
    python -m studies.table7 finetune --variant en     # every initialisation, studies/downstream.py's protocol
    python -m studies.table7 report                    # docs/table7.md and its plots, from the runs' files

Every step skips what is complete and resumes what is not (`ernie.pretrain --resume`,
`ernie.finetune --resume`), so a killed study continues where it stopped when run again.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import yaml

from ernie.pretrain.log import FINAL_WINDOW, heldout_losses, read_log
from ernie.pretrain.schedule import Schedule, load_schedule
from studies import downstream
from studies.jobs import ROOT, make_shards, model_saved, pretrain_run, run_all, settle_remakes
from studies.template import TEMPLATES, fill, segment_text, shown, write_report

RUN_LIST = ROOT / "configs" / "studies" / "table7.yaml"
STRATEGIES = ("continual", "multitask", "continual_multitask")
BUDGET_RATIO = 0.75  # knowledge masking's final loss over the unigram entropy that the budget aims at
PAPER_ORDER = ("continual_multitask", "multitask", "continual")  # the paper's Table 7, best first
TITLES = {"continual": "continual learning", "multitask": "multi-task learning",
          "continual_multitask": "continual multi-task learning", "random": "random initialisation"}


@dataclass(frozen=True)
class Variant:
    name: str
    title: str
    data: Path                    # the data config of the pre-training text
    strategies: Dict[str, Path]   # strategy -> its pre-training config
    output: Path                  # the fine-tuning runs go under OUTPUT/finetune
    settings: tuple               # downstream.Setting

    def config(self, strategy: str) -> dict:
        return yaml.safe_load(self.strategies[strategy].read_text(encoding="utf-8"))

    def run_dir(self, strategy: str) -> Path:
        return ROOT / self.config(strategy)["output"]

    def schedule(self, strategy: str) -> Schedule:
        return load_schedule(self.strategies[strategy])


def variants(path: Path = RUN_LIST) -> Dict[str, Variant]:
    table = yaml.safe_load(path.read_text(encoding="utf-8"))
    keys = {"title", "data", "strategies", "output", "downstream"}
    found = {}
    for name, entry in table.items():
        if not isinstance(entry, dict) or set(entry) != keys:
            raise SystemExit(f"{path}: variant {name!r} must have exactly the keys {sorted(keys)}")
        if sorted(entry["strategies"]) != sorted(STRATEGIES):
            raise SystemExit(f"{path}: variant {name!r} must name a config for each of {list(STRATEGIES)}")
        found[name] = Variant(name, entry["title"], ROOT / entry["data"],
                              {s: ROOT / entry["strategies"][s] for s in STRATEGIES}, ROOT / entry["output"],
                              tuple(downstream.settings_from(entry["downstream"], f"{path}:{name}")))
    return found


# ---- running --------------------------------------------------------------------------------------

def pretrain(variant: Variant, parallel: int = 2) -> None:
    """The shards (`make_shards`), then the strategies, `parallel` at once with a thread each (on
    2 cores, faster together than one after another with two threads)."""
    make_shards(variant.data)

    def job(strategy: str):
        def run():
            pretrain_run(variant.run_dir(strategy), ["--config", str(variant.strategies[strategy])],
                         (variant.output / "finetune").glob(f"*/{strategy}"), threads=1)
        return run

    run_all([job(s) for s in STRATEGIES], "pre-training", parallel)


def inits(variant: Variant) -> List[downstream.Init]:
    """The strategies' models that have finished pre-training and the random twin of one of them
    (all share one architecture): a strategy still training joins when the command runs again."""
    models = {s: variant.run_dir(s) / "model" for s in STRATEGIES}
    ready = {s: m for s, m in models.items() if model_saved(m)}
    if not ready:
        raise SystemExit(f"fine-tuning needs a pre-trained model first: python -m studies.table7 pretrain "
                         f"--variant {variant.name}")
    pending = [TITLES[s] for s in STRATEGIES if s not in ready]
    if pending:
        print(f"not pre-trained yet, fine-tuned when this runs again: {', '.join(pending)}", flush=True)
    return [*(downstream.Init.pretrained(s, m) for s, m in ready.items()),
            downstream.Init.random_twin("random", next(iter(ready.values())))]


def finetune(variant: Variant, seeds: int, parallel: int = 2) -> None:
    settle_remakes(variant.run_dir(s) for s in STRATEGIES)
    downstream.fetch_missing(variant.settings, variant.output)
    downstream.evaluate_all(variant.settings, inits(variant), variant.output / "finetune", parallel, seeds=seeds)


# ---- the report's parts -----------------------------------------------------------------------------

def setup_text(variant: Variant) -> str:
    config = variant.config(STRATEGIES[0])
    model = yaml.safe_load((ROOT / config["model"]).read_text(encoding="utf-8"))
    data = yaml.safe_load(variant.data.read_text(encoding="utf-8"))
    schedule = variant.schedule(STRATEGIES[0])
    budgets = sorted(set(schedule.loss_on_steps().values()))
    manifest = ROOT / data["output"] / "manifest.json"
    corpus, held = "", ""
    if manifest.is_file():
        made = json.loads(manifest.read_text(encoding="utf-8"))
        c = made["corpus"]
        corpus = f" ({c['documents']:,} documents, {c['sentences']:,} sentences, {c['tokens']:,} tokens)"
        h = made.get("heldout")
        held = (f" The held-out set: {h['documents']:,} documents ({h['tokens']:,} tokens) kept out of training whole "
                f"(`heldout_documents: {h['share']}`), so no training example holds their text." if h else
                " The held-out set: examples of the training shards kept out of training; their text may be "
                "trained on in other examples (the shards were made without `heldout_documents`).")
    inputs = data["input"] if isinstance(data["input"], list) else [data["input"]]
    return (f"The {model['num_hidden_layers']} x {model['hidden_size']} model (`{config['model']}`) from one "
            f"initialisation (seed {config['seed']}), pre-trained on {', '.join(f'`{i}`' for i in inputs)}{corpus} "
            f"with {', '.join(schedule.tasks)}, in that order; "
            f"{' / '.join(f'{b:,}' for b in budgets)} loss-on steps a task, batches of {config['batch_tokens']:,} "
            f"tokens (`{shown(variant.strategies[STRATEGIES[0]]).replace(STRATEGIES[0] + '.yaml', '*.yaml')}`). "
            f"{held} Loss-on steps per task and steps per strategy, as the schedule module counts them:")


def schedule_table(variant: Variant) -> List[str]:
    schedules = {s: variant.schedule(s) for s in STRATEGIES}
    tasks = list(schedules[STRATEGIES[0]].tasks)
    lines = ["| strategy | " + " | ".join(tasks) + " | steps |", "|---" * (len(tasks) + 2) + "|"]
    for strategy, schedule in schedules.items():
        loss_on = schedule.loss_on_steps()
        lines.append(f"| {TITLES[strategy]} | " + " | ".join(f"{loss_on[t]:,}" for t in tasks)
                     + f" | {schedule.total_steps:,} |")
    return lines


def _summaries(variant: Variant) -> Dict[str, dict]:
    return {s: json.loads(path.read_text(encoding="utf-8")) for s in STRATEGIES
            if (path := variant.run_dir(s) / "summary.json").is_file()}


def _progress(variant: Variant, strategy: str) -> str:
    log = variant.run_dir(strategy) / "log.jsonl"
    if not log.is_file():
        return f"{TITLES[strategy]}: not started"
    records = read_log(log.parent)
    return (f"{TITLES[strategy]}: still training, step {records[-1]['step']:,} of "
            f"{variant.schedule(strategy).total_steps:,} logged" if records else f"{TITLES[strategy]}: started")


def pretraining_table(variant: Variant) -> List[str]:
    """Each finished strategy's final loss per task (over the last windows in which its loss was on:
    for a task of continual learning, the end of its own stage) and knowledge masking's share of
    the unigram entropy; a line for each strategy still training."""
    runs = _summaries(variant)
    tasks = list(variant.schedule(STRATEGIES[0]).tasks)
    lines = []
    if runs:
        lines = [f"Each task's final training loss (mean of the last {FINAL_WINDOW} logged windows in which its loss "
                 "was on) and knowledge masking's against the unigram entropy of the shards' tokens:", "",
                 "| strategy | " + " | ".join(tasks) + " | knowledge masking / unigram entropy |",
                 "|---" * (len(tasks) + 2) + "|"]
        for strategy, s in runs.items():
            ratio = s.get("knowledge_masking_over_entropy")
            lines.append(f"| {TITLES[strategy]} | " + " | ".join(
                f"{s['final_loss'][t]:.3f}" if t in s["final_loss"] else "–" for t in tasks)
                + f" | {f'{ratio:.3f}' if ratio is not None else '–'} |")
    ratios = {s: r["knowledge_masking_over_entropy"] for s, r in runs.items() if "knowledge_masking_over_entropy" in r}
    if ratios:
        met = [f"{TITLES[s]} ({v:.3f})" for s, v in ratios.items() if v <= BUDGET_RATIO]
        missed = [f"{TITLES[s]} ({v:.3f})" for s, v in ratios.items() if v > BUDGET_RATIO]
        lines += ["", f"The budget was set for knowledge masking to end at most {BUDGET_RATIO} x the unigram entropy "
                  "under every strategy, well past the plateau: " + "; ".join(
                      part for part in (f"met by {', '.join(met)}" if met else "",
                                        f"missed by {', '.join(missed)}" if missed else "") if part) + "."]
    pending = [_progress(variant, s) for s in STRATEGIES if s not in runs]
    return lines + ([""] if lines and pending else []) + [f"- {p}" for p in pending]


def machine_text(variant: Variant) -> str:
    runs = {s: r for s, r in _summaries(variant).items() if "train_seconds" in r}
    if not runs:
        return "No strategy has finished pre-training yet, so no training time is on record."
    machines = sorted({r["machine"] for r in runs.values()})
    times = ", ".join(f"{TITLES[s]} {r['train_seconds'] / 3600:.2f} h" for s, r in runs.items())
    text = f"Training time (summary.json, over resumes): {times}; on {' and '.join(machines)}."
    precisions = [f"{TITLES[s]}: " + ", ".join(segment_text(g) for g in r["segments"])
                  for s, r in runs.items() if len(r.get("segments", [])) > 1]
    if precisions:
        text += (" Runs that moved between machines or precisions (`amp: auto` is bfloat16 matrix products where they "
                 "pay, float32 elsewhere): " + "; ".join(precisions) + ".")
    return text


def _heldout(variant: Variant, strategy: str) -> Dict[int, Dict[str, float]]:
    """step -> task -> held-out loss, from the run's log."""
    run_dir = variant.run_dir(strategy)
    if not (run_dir / "log.jsonl").is_file():
        return {}
    return heldout_losses(read_log(run_dir))


def forgetting_table(variant: Variant) -> List[str]:
    """Per strategy, every task's held-out loss before the first step and at each stage end reached."""
    tasks = list(variant.schedule(STRATEGIES[0]).tasks)
    lines = ["| strategy | after | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 2) + "|"]
    rows = 0
    for strategy in STRATEGIES:
        heldout = _heldout(variant, strategy)
        points = [("no training (step 0)", 0)] + [(f"stage {i + 1} (step {end:,})", end)
                                                  for i, end in enumerate(variant.schedule(strategy).stage_ends)]
        for label, step in points:
            if step in heldout:
                rows += 1
                lines.append(f"| {TITLES[strategy]} | {label} | "
                             + " | ".join(f"{heldout[step][t]:.3f}" if t in heldout[step] else "–" for t in tasks) + " |")
    return lines if rows else ["No held-out evaluation is on record yet (the runs log one before their first step)."]


def forgetting(variant: Variant) -> Dict[str, Dict[str, tuple]]:
    """strategy -> task -> (lowest held-out loss, the step it was reached, final held-out loss),
    for the strategies whose evaluation has reached its last stage end."""
    found = {}
    for strategy in STRATEGIES:
        heldout = _heldout(variant, strategy)
        if variant.schedule(strategy).stage_ends[-1] not in heldout:
            continue
        last = max(heldout)
        found[strategy] = {}
        for task in heldout[last]:
            best = min((values[task], step) for step, values in heldout.items() if task in values)
            found[strategy][task] = (best[0], best[1], heldout[last][task])
    return found


def forgetting_summary(variant: Variant) -> List[str]:
    found = forgetting(variant)
    if not found:
        return ["The forgetting summary waits for a strategy's last stage to end."]
    tasks = list(variant.schedule(STRATEGIES[0]).tasks)
    lines = ["Forgetting, held-out: final loss less the lowest reached (the step it was reached):", "",
             "| strategy | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    for strategy, values in found.items():
        lines.append(f"| {TITLES[strategy]} | " + " | ".join(
            f"{values[t][2] - values[t][0]:+.3f} ({values[t][0]:.3f} at {values[t][1]:,})" if t in values else "–"
            for t in tasks) + " |")
    return lines


def forgetting_plot(variant: Variant, path: Path) -> Optional[str]:
    """One panel per task: its held-out loss against the step, a line per strategy, and each
    strategy's stage ends as dotted lines of its colour. Returns the Markdown image line."""
    curves = {s: h for s in STRATEGIES if (h := _heldout(variant, s))}
    if not curves:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tasks = list(variant.schedule(STRATEGIES[0]).tasks)
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.3), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for strategy, heldout in curves.items():
            color = f"C{STRATEGIES.index(strategy)}"  # a strategy keeps its colour whichever have run
            points = sorted((step, values[task]) for step, values in heldout.items() if task in values)
            ax.plot(*zip(*points), label=TITLES[strategy], color=color, linewidth=1.2, marker=".", markersize=3)
            for end in variant.schedule(strategy).stage_ends[:-1]:
                ax.axvline(end, color=color, linestyle=":", linewidth=0.8)
        ax.set_title(task)
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("held-out loss")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"![every task's held-out loss under each strategy, stage ends dotted]({path.name})"


INITS = (*STRATEGIES, "random")


def ordering(variant: Variant) -> List[str]:
    """Per setting, the initialisations from the highest mean test score to the lowest, whether
    the paper's order of the strategies holds, and which strategies are ahead of random
    initialisation, as measured."""
    lines = []
    for setting, found, _ in downstream.results(variant.output / "finetune", variant.settings, INITS):
        means = {init: statistics.fmean(found[init]["test"]) for init in INITS}
        seeds = {init: len(found[init]["test"]) for init in INITS}
        ranked = sorted(means, key=means.get, reverse=True)
        counted = "" if len(set(seeds.values())) == 1 else " (not yet equal seeds: " + ", ".join(
            f"{TITLES[i]} {seeds[i]}" for i in INITS) + ")"
        holds = all(means[a] > means[b] for a, b in zip(PAPER_ORDER, PAPER_ORDER[1:]))
        ahead = [TITLES[s] for s in STRATEGIES if means[s] > means["random"]]
        lines.append(f"- {setting.title}: " + " > ".join(f"{TITLES[i]} ({100 * means[i]:.1f})" for i in ranked)
                     + f". The paper's order of the strategies {'holds' if holds else 'does not hold'}; "
                     + (f"ahead of random initialisation: {', '.join(ahead)}." if ahead else
                        "no strategy is ahead of random initialisation.") + counted)
    if not lines:
        return ["The ordering waits for every initialisation's fine-tuning runs "
                f"(`python -m studies.table7 finetune --variant {variant.name}`)."]
    return ["Measured order (mean test score), per task:", "", *lines, "", *order_reasons(variant)]


def order_reasons(variant: Variant) -> List[str]:
    """What the measurements say of the paper's order: each step of it per task, the difference
    with its 95% interval over the seeds both strategies have (paired: a seed's runs differ by the
    encoder alone; an interval holding 0 does not tell the two apart), and what each strategy's
    pre-training left of its tasks (held-out forgetting, knowledge masking against the unigram
    entropy)."""
    lines = []
    for setting, found, _ in downstream.results(variant.output / "finetune", variant.settings, INITS):
        steps = []
        for a, b in zip(PAPER_ORDER, PAPER_ORDER[1:]):
            d = downstream.paired_difference(found[a], found[b])
            if d is not None and len(d[2]) > 1:
                steps.append(f"{TITLES[a]} − {TITLES[b]} {downstream.difference_text(d)}")
        if steps:
            lines.append(f"- {setting.title}: " + "; ".join(steps) + ".")
    head = "Each step of the paper's order per task, test difference in points with its 95% interval over " \
           "the seeds both have (within the spread, the seeds do not tell the two apart)"
    lines = [f"{head}:", "", *lines] if lines else [f"{head}: waits for two seeds or more of each strategy."]
    forgot = forgetting(variant)
    if forgot:
        lines += ["", "What pre-training left each strategy with, held-out (final loss less the lowest it reached):", ""]
        for strategy, values in forgot.items():
            worst = sorted(((final - low, task) for task, (low, _, final) in values.items()), reverse=True)
            lines.append(f"- {TITLES[strategy]}: " + ", ".join(f"{task} {d:+.3f}" for d, task in worst) + ".")
    ratios = {s: r for s, summary in _summaries(variant).items()
              if (r := summary.get("knowledge_masking_over_entropy")) is not None}
    if ratios:
        lines += ["", "Knowledge masking's final training loss against the unigram entropy: "
                  + ", ".join(f"{TITLES[s]} {r:.3f}" for s, r in ratios.items()) + "."]
    return lines


def section(variant: Variant, docs: Path) -> str:
    finetuned = variant.output / "finetune"
    table = downstream.comparison_table(finetuned, variant.settings, INITS, TITLES, "random")
    plot = forgetting_plot(variant, docs / f"table7_{variant.name}.png")
    return fill(TEMPLATES / "table7_variant.md", {
        "title": variant.title,
        "setup": setup_text(variant),
        "schedule_table": "\n".join(schedule_table(variant)),
        "pretraining_table": "\n".join(pretraining_table(variant)),
        "machine": machine_text(variant),
        "forgetting_table": "\n".join(forgetting_table(variant)),
        "forgetting_summary": "\n".join(forgetting_summary(variant)),
        "forgetting_plot": plot or "",
        "downstream_table": "\n".join(table) if len(table) > 2 else
        "No initialisation has been fine-tuned on every setting yet.",
        "floor_findings": "\n".join(downstream.floor_findings(finetuned, variant.settings, INITS, TITLES)),
        "ordering": "\n".join(ordering(variant)),
    })


def report(doc: Path, which: Sequence[Variant]) -> None:
    """The document from the runs' files: a section for each variant whose pre-training has started."""
    started = [v for v in which if any((v.run_dir(s) / "log.jsonl").is_file() for s in STRATEGIES)]
    sections = [section(v, doc.parent) for v in started]
    sections += [f"## {v.title}\n\nNot run yet: `bash scripts/table7.sh {v.name}`." for v in which if v not in started]
    write_report(doc, fill(TEMPLATES / "table7.md", {"variants": "\n\n".join(sections)}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies.table7", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    known = variants()
    for name, text in (("pretrain", "the shards and the three strategies' pre-training"),
                       ("finetune", "fine-tune every initialisation (strategies and random)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--variant", required=True, choices=sorted(known))
        p.add_argument("--jobs", type=int, default=2, help="runs at once (default 2)")
        if name == "finetune":
            p.add_argument("--seeds", type=int, default=5)
    r = sub.add_parser("report", help="write the document from the runs' files")
    r.add_argument("--doc", default=str(ROOT / "docs" / "table7.md"))
    args = parser.parse_args(argv)
    if args.command == "pretrain":
        pretrain(known[args.variant], args.jobs)
    elif args.command == "finetune":
        finetune(known[args.variant], args.seeds, args.jobs)
    else:
        report(Path(args.doc), list(known.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
