"""How pre-training from scratch pays as the budget grows (docs/pretraining_curve.md): one long run's
models, saved at geometric counts of tokens seen, fine-tuned on the English suite beside random
initialisation and the floors; the 16 M-token runs that measure the schedule and two ablations.

    python -m studies.curve pretrain [--jobs 2]   # the shards, the long run and the 16 M-token runs
    python -m studies.curve finetune [--jobs 2]   # every model on the suite (studies/downstream.py)
    python -m studies.curve report                # docs/pretraining_curve.md and its plot

The runs: configs/studies/curve.yaml. The end model and random initialisation each choose their
learning rate per setting from the grid on dev of seed 1 (studies/downstream.py's protocol); every
other model fine-tunes at the end model's rate, so that the curve differs in the tokens seen only.
Every step skips what is complete and resumes what is not (`ernie.pretrain --resume`,
`ernie.finetune --resume`), so a killed study continues where it stopped when run again; the
report reads whatever the runs have written so far.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

from ernie.pretrain.log import FINAL_WINDOW, read_log
from studies import downstream
from studies.jobs import ROOT, job_threads, make_shards, model_saved, pretrain_run, run_all, settle_remakes, shards_of
from studies.template import TEMPLATES, fill, segment_text, shown, write_report

RUN_LIST = ROOT / "configs" / "studies" / "curve.yaml"
GROUPS = (("few", "300 labels"), ("full", "full training sets"))
PRECISIONS = {"off": "float32", "bf16": "bfloat16 matrix products"}
CROSSOVER = 0.02  # ahead of random initialisation by this much on the suite mean
KEYS = {"output", "long", "runs", "settings", "pos", "grid", "seeds", "finetune_settings", "published"}


@dataclass(frozen=True)
class Run:
    """A pre-training run of the study: its config, the data config of its shards, its output."""
    name: str
    config: Path
    data: Path
    output: Path
    change: str = ""

    @property
    def shards(self) -> Path:
        return shards_of(self.data)


@dataclass(frozen=True)
class Model:
    """A model to fine-tune: its run directory name under OUTPUT/finetune, where it is, and the
    tokens its run had seen when it was saved."""
    name: str
    path: Path
    tokens: int


@dataclass(frozen=True)
class Study:
    output: Path
    long: Run
    runs: Tuple[Run, ...]
    settings: Tuple[downstream.Setting, ...]
    pos: downstream.Setting
    grid: Tuple[float, ...]
    seeds: int
    published: Tuple[dict, ...]
    finetune_settings: Tuple[str, ...] = ()  # `key=value` of ernie.finetune for every initialisation

    @property
    def finetune_dir(self) -> Path:
        return self.output / "finetune"


def load_study(path: Path = RUN_LIST) -> Study:
    table = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(table, dict) or set(table) != KEYS:
        raise SystemExit(f"{path}: expected exactly the keys {sorted(KEYS)}")
    output = ROOT / table["output"]
    suite = {s.name: s for s in downstream.language_settings("en-suite")}
    unknown = [n for n in [*table["settings"], table["pos"]] if n not in suite]
    if unknown:
        raise SystemExit(f"{path}: settings {unknown} are not in {downstream.SETTINGS_FILE} (en-suite)")
    if not isinstance(table["finetune_settings"] or [], list):
        raise SystemExit(f"{path}: finetune_settings must be a list of key=value settings")
    long_config = ROOT / table["long"]["config"]
    long = Run("long", long_config, ROOT / table["long"]["data"],
               ROOT / yaml.safe_load(long_config.read_text(encoding="utf-8"))["output"])
    runs = tuple(Run(r["name"], ROOT / r["config"], ROOT / r["data"], output / r["name"], r["change"])
                 for r in table["runs"])
    return Study(output, long, runs, tuple(suite[n] for n in table["settings"]), suite[table["pos"]],
                 tuple(float(lr) for lr in table["grid"]), int(table["seeds"]),
                 tuple({**p, "tokens": float(p["tokens"]), "score": float(p["score"])} for p in table["published"]),
                 tuple(str(s) for s in table["finetune_settings"] or ()))


# ---- running --------------------------------------------------------------------------------------

def pretrain(study: Study, parallel: int = 2) -> None:
    """The shards of every data config (`make_shards`), then the runs, `parallel` at once with a
    thread each."""
    for data in dict.fromkeys(r.data for r in (study.long, *study.runs)):
        make_shards(data)

    def job(run: Run):
        def go():
            # every model of the study fine-tunes at the end model's rates: the long run's records go with all
            names = ("end", "tokens-*", *(r.name for r in study.runs)) if run is study.long else (run.name,)
            pretrain_run(run.output, ["--config", str(run.config), "--output", str(run.output), "--set",
                                      f"data={run.shards}"],
                         [p for n in names for p in study.finetune_dir.glob(f"*/{n}")], threads=1)
        return go

    run_all([job(r) for r in (study.long, *study.runs)], "pre-training", parallel)


def _summary(run: Run) -> Optional[dict]:
    path = run.output / "summary.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def curve_models(study: Study) -> List[Model]:
    """The long run's saved models by tokens seen, and its final model (`end`) where it finished."""
    found = []
    for path in sorted((study.long.output / "models").glob("tokens-*/tokens.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        found.append(Model(path.parent.name, path.parent, int(record["tokens_seen"])))
    summary = _summary(study.long)
    if summary is not None:
        found.append(Model("end", study.long.output / "model", int(summary["tokens_seen"])))
    return sorted(found, key=lambda m: m.tokens)


def run_models(study: Study) -> List[Model]:
    """The finished 16 M-token runs' models."""
    return [Model(r.name, r.output / "model", int(s["tokens_seen"])) for r in study.runs if (s := _summary(r))]


def finetune(study: Study, parallel: int = 2) -> None:
    """The end model and random initialisation at their own rates (the grid), then every other
    model at the end model's rate, each setting, `study.seeds` seeds: first every model's
    settings with few labels, then the full training sets (the most of the hours), so that an
    interrupted study has whole curves to report. While the long run is still training, random
    initialisation alone (it needs the run's vocabulary and shape, which its first saved model
    has), so that the cores the run leaves free do the part that does not wait for it."""
    settle_remakes(r.output for r in (study.long, *study.runs))
    downstream.fetch_missing([*study.settings, study.pos], study.output)
    models = [m for m in curve_models(study) if model_saved(m.path)]
    if not models:
        raise SystemExit(f"fine-tuning needs a saved model of the long run first ({study.long.output / 'models'}): "
                         "python -m studies.curve pretrain")
    out = study.finetune_dir
    random = downstream.Init.random_twin("random", models[0].path, study.finetune_settings)
    end = next((m for m in models if m.name == "end"), None)
    if end is None:
        print(f"the long run's end model is not trained yet ({study.long.output / 'model'}): random initialisation "
              f"first; the models of the curve take the end model's rates, so they wait for it", flush=True)
        downstream.evaluate_all([*study.settings, study.pos], [random], out, parallel, seeds=study.seeds,
                                grid=study.grid)
        return
    inits = [downstream.Init.pretrained("end", end.path, study.finetune_settings), random]
    downstream.evaluate_all([*study.settings, study.pos], inits, out, parallel, seeds=study.seeds, grid=study.grid)
    threads = job_threads(parallel)
    jobs = []
    for group, _ in GROUPS:
        for model in [m for m in models if m.name != "end"] + [m for m in run_models(study) if model_saved(m.path)]:
            init = downstream.Init.pretrained(model.name, model.path, study.finetune_settings)
            for setting in (s for s in study.settings if _group(s) == group):
                rate = downstream.collect(out, setting, "end")["lr"]
                jobs.append(lambda s=setting, i=init, r=rate: downstream.evaluate(
                    s, i, out, seeds=study.seeds, grid=[r], threads=threads))
    run_all(jobs, "fine-tuning", parallel)


# ---- the report's figures ---------------------------------------------------------------------------

def _group(setting: downstream.Setting) -> str:
    return "full" if setting.train_examples is None else "few"


def suite_scores(study: Study, model: str) -> Dict[str, List[float]]:
    """Per group, the suite mean of each seed (test, the seeds every setting of the group has):
    {} for a group where some setting has no result yet."""
    found = {}
    for group, _ in GROUPS:
        tests = []
        for setting in study.settings:
            if _group(setting) != group:
                continue
            result = downstream.collect(study.finetune_dir, setting, model)
            if result is None or not result["test"]:
                tests = None
                break
            tests.append(result["test"])
        if tests:
            seeds = min(len(t) for t in tests)
            found[group] = [statistics.fmean(t[i] for t in tests) for i in range(seeds)]
    return found


def setting_floors(study: Study) -> Dict[str, Optional[float]]:
    """Each setting's floor on test, by setting name (None where its files are missing)."""
    found = {}
    for setting in study.settings:
        bar = downstream.floor(study.finetune_dir, setting)
        found[setting.name] = bar.get("test", {}).get(setting.metric) if "error" not in bar else None
    return found


def floor_means(study: Study, floors: Dict[str, Optional[float]]) -> Dict[str, float]:
    """Per group, the mean of the settings' `floors` (a group where a floor is missing: none)."""
    found = {}
    for group, _ in GROUPS:
        values = [floors[s.name] for s in study.settings if _group(s) == group]
        if values and None not in values:
            found[group] = statistics.fmean(values)
    return found


def _difference(a: Sequence[float], b: Sequence[float]) -> Tuple[float, Optional[float]]:
    """Mean and standard deviation over seeds of a - b, seeds paired by number."""
    pairs = [x - y for x, y in zip(a, b)]
    return statistics.fmean(pairs), (statistics.stdev(pairs) if len(pairs) > 1 else None)


def _signed(diff: Tuple[float, Optional[float]]) -> str:
    mean, sd = diff
    return f"{100 * mean:+.1f}" + (f" ± {100 * sd:.1f}" if sd is not None else "")


def curve_table(study: Study) -> List[str]:
    """Per model of the curve (and random initialisation, the floors): each setting's test score
    and the suite mean per group, in points."""
    settings = sorted(study.settings, key=lambda s: (_group(s) == "full", s.name))
    lines = ["| model | tokens seen | " + " | ".join(s.name for s in settings)
             + " | mean, 300 labels | mean, full sets |", "|---" * (len(settings) + 4) + "|"]
    rows = [(m.name, f"{m.tokens / 1e6:.1f} M") for m in curve_models(study)] + [("random", "0")]
    for name, tokens in rows:
        cells = []
        for setting in settings:
            result = downstream.collect(study.finetune_dir, setting, name)
            cells.append(downstream.mean_sd(result["test"]) if result else "–")
        means = suite_scores(study, name)
        if any(c != "–" for c in cells):
            title = "random initialisation" if name == "random" else name
            lines.append(f"| {title} | {tokens} | " + " | ".join(cells) + " | "
                         + " | ".join(downstream.mean_sd(means.get(g, [])) for g, _ in GROUPS) + " |")
    each = setting_floors(study)
    floors = floor_means(study, each)
    if floors:
        lines.append("| floor (TF-IDF + logistic regression) | – | "
                     + " | ".join(f"{100 * each[s.name]:.1f}" if each[s.name] is not None else "–" for s in settings)
                     + " | " + " | ".join(f"{100 * floors[g]:.1f}" if g in floors else "–" for g, _ in GROUPS) + " |")
    return lines if len(lines) > 2 else []


def crossover(study: Study) -> List[str]:
    """Per group: the first model of the curve ahead of random initialisation by CROSSOVER on the
    suite mean, with the spread over seeds of the difference; and where the end model stands."""
    random = suite_scores(study, "random")
    lines = []
    for group, title in GROUPS:
        if group not in random:
            continue
        measured = [(m, suite_scores(study, m.name).get(group)) for m in curve_models(study)]
        measured = [(m, s) for m, s in measured if s]
        if not measured:
            continue
        ahead = [(m, _difference(s, random[group])) for m, s in measured]
        first = next(((m, d) for m, d in ahead if d[0] >= CROSSOVER), None)
        last_model, last_diff = ahead[-1]
        text = (f"- **{title}**: " + (f"pre-training is {100 * CROSSOVER:.0f} points ahead of random initialisation "
                                     f"from {first[0].tokens / 1e6:.1f} M tokens on ({first[0].name}: {_signed(first[1])} "
                                     "points, mean ± sd over seeds of the suite-mean difference)"
                                     if first else f"no model of the curve is {100 * CROSSOVER:.0f} points ahead of "
                                     "random initialisation")
                + f"; the last measured, {last_model.name} at {last_model.tokens / 1e6:.1f} M tokens: "
                  f"{_signed(last_diff)} points.")
        lines.append(text)
    return lines


def per_doubling(study: Study) -> List[str]:
    """The suite mean's gain per doubling of the tokens seen, a least-squares line over the curve's
    last three models, per group."""
    lines = []
    for group, title in GROUPS:
        measured = [(math.log2(m.tokens), statistics.fmean(s)) for m in curve_models(study)
                    if (s := suite_scores(study, m.name).get(group))][-3:]
        if len(measured) < 3:
            continue
        xs, ys = zip(*measured)
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in measured) / sum((x - mx) ** 2 for x in xs)
        lines.append(f"- **{title}**: {100 * slope:+.2f} points per doubling of the tokens seen over the last three "
                     f"models ({2 ** xs[0] / 1e6:.1f} to {2 ** xs[-1] / 1e6:.1f} M tokens).")
    return lines


def _knowledge_masking(run: Run, step: Optional[int] = None) -> Optional[float]:
    """Knowledge masking's loss as a share of the unigram entropy of the run's shards: the mean of
    the last FINAL_WINDOW logged windows up to `step` (the run's end where None)."""
    manifest = run.shards / "manifest.json"
    if not manifest.is_file() or not (run.output / "log.jsonl").is_file():
        return None
    entropy = json.loads(manifest.read_text(encoding="utf-8")).get("unigram_entropy", {}).get("nats")
    losses = [r["knowledge_masking/loss"] for r in read_log(run.output)
              if "knowledge_masking/loss" in r and (step is None or r["step"] <= step)][-FINAL_WINDOW:]
    return statistics.fmean(losses) / entropy if losses and entropy else None


def ablation_table(study: Study) -> List[str]:
    """The 16 M-token runs against the first (`decay-16m`), and the long run's model at 16 M tokens
    (the constant schedule's side of the pair): knowledge masking against the entropy, the suite
    means, their differences from the first with the spread over seeds."""
    if not study.runs:
        return []
    base = study.runs[0]
    base_scores = suite_scores(study, base.name)
    at_16m = next((m for m in curve_models(study) if m.name == "tokens-16000000"), None)
    rows = [(r.name, r.change or "the base of the comparisons", r, None) for r in study.runs]
    if at_16m is not None:
        step = json.loads((at_16m.path / "tokens.json").read_text(encoding="utf-8"))["step"]
        rows.insert(1, (at_16m.name, "the long run at 16 M tokens: the learning rate constant after warm-up",
                        study.long, step))
    lines = ["| model | change from " + base.name + " | knowledge masking / entropy | mean, 300 labels | "
             "mean, full sets | − " + base.name + ", 300 | − " + base.name + ", full |", "|---|---|---|---|---|---|---|"]
    for name, change, run, step in rows:
        scores = suite_scores(study, name)
        share = _knowledge_masking(run, step) if (step is not None or (run.output / "summary.json").is_file()) else None
        if share is None and not scores:
            continue
        diffs = [_signed(_difference(scores[g], base_scores[g])) if name != base.name and g in scores
                 and g in base_scores else "" for g, _ in GROUPS]
        lines.append(f"| {name} | {change} | {f'{share:.3f}' if share is not None else '–'} | "
                     + " | ".join(downstream.mean_sd(scores.get(g, [])) for g, _ in GROUPS) + " | " + " | ".join(diffs) + " |")
    return lines if len(lines) > 2 else []


def pos_table(study: Study) -> List[str]:
    table = downstream.comparison_table(study.finetune_dir, [study.pos], ["end", "random"],
                                        {"end": "end model", "random": "random initialisation"}, "random")
    return table if len(table) > 2 else []


def curve_plot(study: Study, path: Path) -> bool:
    """Per group, the suite mean (test) against the tokens seen (log scale) with its spread over
    seeds and each task's score; random initialisation and the floor as lines; the published
    points at their token counts. False where no model has results yet."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = curve_models(study)
    random, floors = suite_scores(study, "random"), floor_means(study, setting_floors(study))
    if not any(suite_scores(study, m.name) for m in models):
        return False
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for ax, (group, title) in zip(axes, GROUPS):
        for setting in [s for s in study.settings if _group(s) == group]:
            points = [(m.tokens, statistics.fmean(r["test"])) for m in models
                      if (r := downstream.collect(study.finetune_dir, setting, m.name)) and r["test"]]
            if points:
                ax.plot(*zip(*points), linewidth=0.8, alpha=0.5, label=setting.task)
        means = [(m.tokens, s) for m in models if (s := suite_scores(study, m.name).get(group))]
        if means:
            ax.errorbar([t for t, _ in means], [statistics.fmean(s) for _, s in means],
                        yerr=[statistics.stdev(s) if len(s) > 1 else 0.0 for _, s in means], color="black",
                        linewidth=2, marker="o", capsize=3, label="suite mean (± sd over seeds)")
        if group in random:
            ax.axhline(statistics.fmean(random[group]), color="tab:red", linestyle="--", linewidth=1,
                       label="random initialisation")
        if group in floors:
            ax.axhline(floors[group], color="grey", linestyle=":", linewidth=1, label="floor (TF-IDF)")
        for point in study.published:
            ax.scatter([point["tokens"]], [point["score"] / 100], marker="*", s=80, color="tab:purple")
            ax.annotate(f"{point['name']}\n(SST-2, other data)", (point["tokens"], point["score"] / 100),
                        fontsize=7, ha="right", va="bottom")
        ax.set_xscale("log")
        ax.set_xlabel("tokens seen in pre-training")
        ax.set_title(f"the English suite, {title}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return True


def status(study: Study) -> List[str]:
    """What has run and what has not, from the runs' files."""
    lines = []
    for run in (study.long, *study.runs):
        summary = _summary(run)
        if summary is not None:
            lines.append(f"- {run.name}: finished, {summary['tokens_seen'] / 1e6:.1f} M tokens in "
                         f"{summary['train_seconds'] / 3600:.2f} h of training on {_machine(summary)}.")
        elif (run.output / "log.jsonl").is_file() and (records := read_log(run.output)):
            lines.append(f"- {run.name}: still training, step {records[-1]['step']:,} logged.")
        else:
            lines.append(f"- {run.name}: not started.")
    return lines


def _machine(summary: dict) -> str:
    segments = summary.get("segments") or []
    if len(segments) > 1:
        return ", ".join(segment_text(s) for s in segments)
    return summary.get("machine", "a machine not recorded")


def precisions(study: Study) -> Counter:
    """How many fine-tuning runs of the study trained in each precision, as their metrics.json say
    (`amp: auto` is float32 or bfloat16 by the machine each ran on)."""
    return Counter(json.loads(path.read_text(encoding="utf-8")).get("settings", {}).get("amp", "off")
                   for path in study.finetune_dir.rglob("metrics.json"))


def setup_text(study: Study) -> str:
    long = yaml.safe_load(study.long.config.read_text(encoding="utf-8"))
    model = yaml.safe_load((ROOT / long["model"]).read_text(encoding="utf-8"))
    counts = ", ".join(f"{n / 1e6:g}" for n in long["save_models_at_tokens"])
    found = precisions(study)
    ran = ", ".join(f"{n} in {PRECISIONS.get(amp, amp)}" for amp, n in sorted(found.items()))
    return (f"The {model['num_hidden_layers']} x {model['hidden_size']} model (`{long['model']}`), pre-trained by "
            f"`{shown(study.long.config)}` with the learning rate "
            f"{long['optimization']['lr_schedule']} after warm-up and saved at {counts} M tokens seen; each model "
            f"fine-tuned on {len(study.settings)} settings of the English suite with {study.seeds} seeds "
            f"(`{shown(RUN_LIST)}`), with {', '.join(f'`{s}`' for s in study.finetune_settings) or 'the defaults'}"
            + (f"; of the fine-tuning runs so far, {ran}." if found else "."))


def report(study: Study, doc: Path) -> None:
    plot = doc.parent / "pretraining_curve.png"
    drawn = curve_plot(study, plot)
    published = "\n".join(f"- {p['name']}: {p['score']:.1f} at about {p['tokens']:.0e} tokens ({p['what']})."
                          for p in study.published)
    text = fill(TEMPLATES / "pretraining_curve.md", {
        "setup": setup_text(study), "status": "\n".join(status(study)),
        "plot": f"![the suite mean against the tokens seen]({plot.name})" if drawn else
                "No model has been fine-tuned yet: the plot comes with the first results.",
        "curve_table": "\n".join(curve_table(study)) or "No fine-tuning results yet.",
        "crossover": "\n".join(crossover(study)) or "- Not measured yet.",
        "per_doubling": "\n".join(per_doubling(study)) or "- Not measured yet (three models of the curve are needed).",
        "ablations": "\n".join(ablation_table(study)) or "No 16 M-token run has results yet.",
        "pos": "\n".join(pos_table(study)) or "Not measured yet.",
        "published": published})
    write_report(doc, text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies.curve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("pretrain", "finetune", "report"))
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (default 2)")
    parser.add_argument("--doc", default="docs/pretraining_curve.md")
    args = parser.parse_args(argv)
    study = load_study()
    if args.command == "pretrain":
        pretrain(study, args.jobs)
    elif args.command == "finetune":
        finetune(study, args.jobs)
    else:
        report(study, ROOT / args.doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
