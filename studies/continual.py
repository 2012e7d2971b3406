"""Continuing a released model with ERNIE 2.0's tasks, measured against where it started
(docs/continual.md).

    python -m studies.continual pretrain [--only continued review-sentiment ...]
    python -m studies.continual finetune [--jobs 2] [--only start continued ...]
    python -m studies.continual probe [--jobs 2]   # linear probes of the frozen vectors (minutes)
    python -m studies.continual speed      # the recipe's pace, alone on the machine
    python -m studies.continual report [--doc docs/continual.md]

`pretrain` fetches the start model (`ernie.pretrained`), makes the shards and continues it: on the
corpus of the recipe (`continued`) and on each downstream task's own training texts, labels
dropped (`task_adaptive`, the data config's `labelled_texts`). `finetune` runs every
initialisation on its settings by the protocol of `studies.downstream`, each at the rate its grid
chooses on dev of seed 1, then more seeds, and more again where two initialisations of a setting
come within two standard deviations. `probe` fits a linear probe on each initialisation's frozen
sentence vectors (`ernie.finetune.probe`): what they hold, apart from how fine-tuning moves them. `report` writes the document from the runs' files. Every
step skips what is complete and resumes what is not, so a killed study continues where it was.
The runs: configs/studies/continual.yaml.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from ernie.pretrain.log import heldout_losses, read_log
from ernie.pretrain.schedule import schedule_from_config
from ernie_common.fileio import atomic_write_text
from studies import downstream
from studies.jobs import ROOT, job_threads, model_saved, pretrain_run, run_all, run_python, settle_remakes, shards_made
from studies.template import fill, precision_text, shown, write_report

STUDY_FILE = ROOT / "configs" / "studies" / "continual.yaml"
TEMPLATE = ROOT / "studies" / "templates" / "continual.md"


def load_study(path: Path = STUDY_FILE) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Run:
    """A continued model: its name, its data and pre-training configs with the overrides that
    make it (none for the recipe as it is), its shards and its run directory."""
    name: str
    data_config: Path
    pretrain_config: Path
    data_set: Tuple[str, ...]
    pretrain_set: Tuple[str, ...]
    shards: Path
    run_dir: Path

    @property
    def model(self) -> Path:
        return self.run_dir / "model"

    @property
    def logs(self) -> Path:
        return self.run_dir.parent


def start_model(study: dict) -> Path:
    return ROOT / study["start"]["dir"] / study["start"]["name"]


def runs(study: dict) -> List[Run]:
    """The recipe as it is (`continued`), and per downstream task the same recipe on the task's
    training texts at its own budget, its shards and run under OUTPUT/tapt-TASK."""
    from ernie.pretrain.config import load_config
    data, pretrain = ROOT / study["continued"]["data"], ROOT / study["continued"]["pretrain"]
    recipe = load_config(pretrain)
    found = [Run("continued", data, pretrain, (), (), ROOT / recipe.data, ROOT / recipe.output)]
    for task, entry in study["task_adaptive"].items():
        where = ROOT / study["output"] / f"tapt-{task}"
        budget = json.dumps(entry["iterations_per_task"])
        found.append(Run(f"tapt-{task}", data, pretrain,
                         (f"labelled_texts={ROOT / entry['texts']}", f"output={where / 'shards'}"),
                         (f"data={where / 'shards'}", f"output={where / 'pretrain'}",
                          f"schedule.iterations_per_task={budget}"),
                         where / "shards", where / "pretrain"))
    return found


def _sets(keys: Sequence[str]) -> List[str]:
    return [arg for key in keys for arg in ("--set", key)]


def pretrain(study: dict, only: Sequence[str] = ()) -> None:
    """The start model, then each continued model not finished yet (resumed where it stopped),
    one after another on all the cores."""
    start = start_model(study)
    if not model_saved(start):
        run_python(["-m", "ernie.pretrained", "get", study["start"]["name"], "--dir", str(start.parent)],
                   log=ROOT / study["output"] / "get.log")
    for entry in study["task_adaptive"].values():
        name = Path(entry["texts"]).name
        if not (ROOT / entry["texts"] / "train.tsv").is_file():
            run_python(["-m", "data_gen", "fetch", name, "--dir", str((ROOT / entry["texts"]).parent)],
                       log=ROOT / study["output"] / f"fetch-{name}.log")
    growth = ROOT / study["output"] / "growth.json"
    if not growth.is_file() and shards_made(runs(study)[0].shards):
        growth.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(growth, json.dumps(growth_check(study), indent=2) + "\n")
    for run in runs(study):
        if only and run.name not in only and run.name.removeprefix("tapt-") not in only:
            continue
        if not shards_made(run.shards):
            run_python(["-m", "data_gen", "make", "--config", str(run.data_config), *_sets(run.data_set)],
                       log=run.logs / "data.log")
        pretrain_run(run.run_dir, ["--config", str(run.pretrain_config), *_sets(run.pretrain_set)],
                     (ROOT / study["output"] / "finetune").glob(f"*/{run.name}"))


def growth_check(study: dict, examples: int = 64) -> dict:
    """What the start model computes, before any update, on sentence reordering's examples of
    three and four segments when its 2-row sentence-type table grows by copies of its last row
    (what `init_model` does) or by zero rows: each against the start model reading every segment
    after the first as its second type. The mean relative change of the top layer, over all
    tokens and over the tokens of the third and later segments, on the first such examples of the
    recipe's shards (the model is the start model: no example has been trained on)."""
    from data_gen.shards import Shard
    from ernie.formats.checkpoint import load_model_dir
    from ernie.model.features import pad_batch
    from ernie.model.param_names import SENT_EMBEDDING
    from ernie.model.static_graph import StaticEncoder
    from ernie.pretrain.init_model import grow_sentence_types
    from ernie_common import tasks as registry
    config, params, _ = load_model_dir(start_model(study))
    shards = runs(study)[0].shards
    reorder = registry.get("sentence_reordering").task_id
    chosen = []
    for path in sorted(shards.glob("*.shard")):
        shard = Shard(path)
        chosen += [ex for ex in shard if ex.task == reorder and int(ex.sent_ids.max()) >= 2][:examples - len(chosen)]
        if len(chosen) == examples:
            break
    grown = config.replace(sent_type_vocab_size=4)
    table = params[SENT_EMBEDDING]
    variants = {"copies": grow_sentence_types(table, 4),
                "zeros": np.concatenate([table, np.zeros((2, table.shape[1]), table.dtype)])}
    as_bert = pad_batch([(ex.src_ids, np.minimum(ex.sent_ids, 1)) for ex in chosen], config.pad_token_id, 0)
    batch = pad_batch([(ex.src_ids, ex.sent_ids) for ex in chosen], config.pad_token_id, 0)
    reference, _ = StaticEncoder(config, params).run(as_bert)
    later = (batch["sent_ids"] >= 2) & (batch["input_mask"] > 0)
    real = batch["input_mask"] > 0
    found = {"examples": len(chosen)}
    for name, rows in variants.items():
        out, _ = StaticEncoder(grown, {**params, SENT_EMBEDDING: rows}).run(batch)
        change = np.linalg.norm(out - reference, axis=-1) / np.linalg.norm(reference, axis=-1)
        found[name] = {"all_tokens": float(change[real].mean()), "later_segments": float(change[later].mean())}
    return found


# ---- fine-tuning ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Measured:
    """An initialisation of the study: how it fine-tunes, the settings it is measured on and
    its grid of learning rates."""
    init: downstream.Init
    settings: Tuple[str, ...]
    grid: Tuple[float, ...]
    title: str


def measured(study: dict) -> List[Measured]:
    """start and continued on every setting; each task-adaptive model on its own task's settings;
    random initialisation of the start model's shape where labels are few."""
    settings, extra = tuple(study["settings"]), tuple(study["finetune"])
    grids = {kind: tuple(float(v) for v in values) for kind, values in study["grids"].items()}
    start = start_model(study)
    found = [Measured(downstream.Init.pretrained("start", start, extra), settings, grids["pretrained"],
                      f"{study['start']['name']} (start)")]
    for run in runs(study):
        task = run.name.removeprefix("tapt-")
        mine = settings if run.name == "continued" else tuple(s for s in settings if s.startswith(task))
        title = "continued (corpus)" if run.name == "continued" else f"task-adaptive ({task} texts)"
        found.append(Measured(downstream.Init.pretrained(run.name, run.model, extra), mine, grids["pretrained"], title))
    few = tuple(s.name for s in suite_settings(study) if s.train_examples is not None)
    found.append(Measured(downstream.Init.random_twin("random", start, extra), few, grids["random"],
                          "random initialisation"))
    return found


def suite_settings(study: dict) -> List[downstream.Setting]:
    by_name = {s.name: s for s in downstream.language_settings("en-suite")}
    missing = [n for n in study["settings"] if n not in by_name]
    if missing:
        raise SystemExit(f"{STUDY_FILE}: settings {missing} are not in {downstream.SETTINGS_FILE} (en-suite)")
    return [by_name[n] for n in study["settings"]]


def close_pairs(out: Path, setting: downstream.Setting, names: Sequence[str]) -> List[str]:
    """The initialisations of a setting that their seeds so far do not tell apart from another
    on dev (the 95% interval of their paired difference holds 0): they get more seeds. On dev,
    never on test, which chooses nothing; and for both of a pair alike."""
    found = {n: r for n in names if (r := downstream.collect(out, setting, n)) and len(r["dev"]) > 1}
    close = set()
    for a in found:
        for b in found:
            if a < b and (d := downstream.paired_difference(found[a], found[b], "dev")) and abs(d[0]) <= d[1]:
                close |= {a, b}
    return sorted(close)


def finetune(study: dict, parallel: int, only: Sequence[str] = ()) -> None:
    settle_remakes(run.run_dir for run in runs(study))
    downstream.fetch_missing(suite_settings(study), ROOT / study["output"])
    out, settings = ROOT / study["output"] / "finetune", {s.name: s for s in suite_settings(study)}
    chosen = [m for m in measured(study) if not only or m.init.name in only]
    missing = [m.init.name for m in chosen if m.init.source[0] == "--init-model"
               and not model_saved(Path(m.init.source[1]))]
    if missing:
        raise SystemExit(f"fine-tuning needs the models of {missing} first: python -m studies.continual pretrain")
    threads = job_threads(parallel)
    run_all([lambda m=m, s=s: downstream.evaluate(settings[s], m.init, out, seeds=study["seeds"], grid=m.grid,
                                                  threads=threads)
             for m in chosen for s in m.settings], "fine-tuning", parallel)
    on = {s: [m.init.name for m in measured(study) if s in m.settings] for s in settings}  # who is measured where
    close = {s: close_pairs(out, settings[s], names) for s, names in on.items()}
    run_all([lambda m=m, s=s: downstream.more_seeds(settings[s], m.init, out, study["close_seeds"], threads=threads)
             for m in chosen for s in m.settings if m.init.name in close[s]], "fine-tuning (more seeds)", parallel)


def probes(study: dict, parallel: int, only: Sequence[str] = ()) -> None:
    """The linear probe of every initialisation's frozen vectors on each setting it is measured on."""
    settle_remakes(run.run_dir for run in runs(study))
    downstream.fetch_missing(suite_settings(study), ROOT / study["output"])
    out, settings = ROOT / study["output"] / "finetune", {s.name: s for s in suite_settings(study)}
    threads = job_threads(parallel)
    run_all([lambda m=m, s=s: downstream.probe(settings[s], m.init, out, threads)
             for m in measured(study) if not only or m.init.name in only for s in m.settings],
            "linear probes", parallel)


# ---- the report -------------------------------------------------------------------------------

def pretraining_text(study: dict) -> str:
    lines = []
    for run in runs(study):
        path = run.run_dir / "summary.json"
        if not path.is_file():
            steps = [r["step"] for r in read_log(run.run_dir) if "loss" in r] if (run.run_dir / "log.jsonl").is_file() else []
            lines.append(f"- {run.name}: " + (f"still training, step {steps[-1]:,} logged" if steps else "not started"))
            continue
        s = json.loads(path.read_text(encoding="utf-8"))
        lines.append(f"- {run.name}: {s['steps']:,} steps in {s.get('train_seconds', 0) / 60:.1f} min of training "
                     f"on {s.get('machine', 'an unrecorded machine')}")
    return "\n".join(lines)


SPEED_STEPS = 30  # steps a pace measurement runs; its first logged window (start-up) is left out
SPEED_RECORD = "speed.json"  # OUTPUT/recipe-speed/AMP/: the machine and precision the pace was measured in


def speed(study: dict) -> None:
    """The recipe's pace on this machine: its first SPEED_STEPS steps in float32 and with `amp:
    auto`, each from the start on every core, into OUTPUT/recipe-speed/AMP/. Run it with nothing
    else on the machine: the report turns the paces into the recipe's minutes."""
    recipe = runs(study)[0]
    if not shards_made(recipe.shards):
        run_python(["-m", "data_gen", "make", "--config", str(recipe.data_config)], log=recipe.logs / "data.log")
    for amp in ("off", "auto"):
        out = ROOT / study["output"] / "recipe-speed" / amp
        shutil.rmtree(out, ignore_errors=True)
        print(f"the recipe's first {SPEED_STEPS} steps, amp {amp}", flush=True)
        run_python(["-m", "ernie.pretrain", "--config", str(recipe.pretrain_config), "--output", str(out),
                    "--max-steps", str(SPEED_STEPS), "--amp", amp, "--quiet"], log=out.with_suffix(".log"))
        record_pace(out)


def record_pace(out: Path) -> None:
    """A pace run stopped by --max-steps has no summary: its machine and precision, as its
    checkpoint records them, written beside its log (both among the study's records)."""
    latest = (out / "checkpoints" / "latest").read_text().strip()
    state = json.loads((out / "checkpoints" / latest / "trainer_state.json").read_text(encoding="utf-8"))
    atomic_write_text(out / SPEED_RECORD, json.dumps(state["segments"][-1], indent=2) + "\n")


def speed_text(study: dict) -> str:
    """Each continued model's minutes on 2 quiet cores: its run's tokens (from its log) over the
    recipe's pace in each precision (`speed`: the same model, batches and kernels), with the
    machine the pace was measured on."""
    tokens = {run.name: sum(r.get("tokens", 0) for r in read_log(run.run_dir))
              for run in runs(study) if (run.run_dir / "log.jsonl").is_file()}
    paces, machine = [], None
    for amp in ("off", "auto"):
        out = ROOT / study["output"] / "recipe-speed" / amp
        windows = [r for r in read_log(out) if "tokens_per_s" in r][1:] if (out / "log.jsonl").is_file() else []
        record = out / SPEED_RECORD
        if not windows or not record.is_file():
            continue
        segment = json.loads(record.read_text(encoding="utf-8"))
        machine = segment["machine"]
        pace = sum(r["tokens"] for r in windows) / sum(r["tokens"] / r["tokens_per_s"] for r in windows)
        precision = precision_text(segment["amp"])
        minutes = ", ".join(f"{name} {n / pace / 60:.1f} min ({n / 1e6:.2f} M tokens)" for name, n in tokens.items())
        paces.append(f"in {precision} (amp {amp}) {pace:,.0f} tokens/s: {minutes}")
    if not paces:
        return (f"The recipe's pace on a quiet machine is measured by `python -m studies.continual speed` "
                f"({SPEED_STEPS} steps in each precision).")
    return (f"Alone on the machine (`python -m studies.continual speed`: the recipe's first {SPEED_STEPS} steps, "
            f"the first logged window left out, on {machine}), each run's tokens take, "
            + "; ".join(paces) + ". The training times above are what the runs took beside other work.")


def growth_text(study: dict) -> str:
    path = ROOT / study["output"] / "growth.json"
    if not path.is_file():
        return "(measured by `python -m studies.continual pretrain` once the recipe's shards exist)"
    g = json.loads(path.read_text(encoding="utf-8"))
    return (f"Measured on {g['examples']} sentence-reordering examples of three and four segments "
            f"(`growth_check`): against the start model reading every segment after the first as its second "
            f"type, new rows copied from the last change its top layer by {100 * g['copies']['later_segments']:.1f}% "
            f"on the tokens of the third and later segments; zero rows by "
            f"{100 * g['zeros']['later_segments']:.0f}% there and {100 * g['zeros']['all_tokens']:.0f}% over all "
            f"tokens (mean relative change of the token vectors), a model the tasks would first have to repair.")


def texts_table(study: dict) -> List[str]:
    """What each run's texts hold for the tasks, from its shards' manifest: the corpus's shape,
    sentence reordering's share of examples in order (every one-segment example is) and
    token-document relation's labels (it needs another segment of the same document)."""
    lines = []
    for run in runs(study):
        path = run.shards / "manifest.json"
        if not path.is_file():
            continue
        m = json.loads(path.read_text(encoding="utf-8"))
        corpus, reorder = m["corpus"], m["labels_per_task"].get("sentence_reordering", {})
        in_order = reorder.get("0", 0) / max(1, sum(reorder.values()))
        tokdoc = sum(m["token_labels"].get("token_document", {}).values())
        lines.append(f"| {run.name} | {corpus['documents']:,} | {corpus['sentences_per_document']:.1f} | "
                     f"{corpus['words_per_sentence']:.1f} | {sum(reorder.values()):,} | {100 * in_order:.0f}% | "
                     f"{tokdoc:,} |")
    if not lines:
        return ["(written once the shards exist)"]
    return ["| model | documents | sentences a document | words a sentence | reordering examples | "
            "of them in order (label 0) | token-document labels |", "|---|---|---|---|---|---|---|", *lines]


def heldout_table(study: dict) -> List[str]:
    """Each continued model's held-out loss of every task before its first step (the start model
    with fresh heads) and at each stage end, from its log."""
    lines = []
    for run in runs(study):
        if not (run.run_dir / "log.jsonl").is_file():
            continue
        losses = heldout_losses(read_log(run.run_dir))
        config = yaml.safe_load((run.run_dir / "config.yaml").read_text(encoding="utf-8"))
        schedule = schedule_from_config(config["schedule"], "schedule")
        tasks = list(schedule.tasks)  # the recipe's, every run's
        if not lines:
            lines = ["| model | after | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 2) + "|"]
        points = [("start (step 0)", 0)] + [(f"stage {i + 1} (step {e:,})", e) for i, e in enumerate(schedule.stage_ends)]
        for label, step in points:
            if step in losses:  # a task without held-out examples in a run's shards: –
                lines.append(f"| {run.name} | {label} | " + " | ".join(
                    f"{losses[step][t]:.3f}" if t in losses[step] else "–" for t in tasks) + " |")
    return lines or ["No held-out evaluation is on record yet."]


def complete(out: Path, study: dict, setting: downstream.Setting, name: str) -> Optional[Dict]:
    """An initialisation's results on a setting once all the protocol's seeds have run (the grid's
    and the rest at the chosen rate), else None: a mean of fewer seeds is not set beside one of more."""
    found = downstream.collect(out, setting, name)
    return found if found and len(found["test"]) >= study["seeds"] else None


def unfinished(out: Path, study: dict) -> List[str]:
    """`init on setting (n of N seeds)` for every measured initialisation whose seeds have not all run."""
    left = []
    for m in measured(study):
        for setting in suite_settings(study):
            if setting.name in m.settings and not complete(out, study, setting, m.init.name):
                found = downstream.collect(out, setting, m.init.name)
                have = len(found["test"]) if found else 0
                left.append(f"{m.title} on {setting.name} ({have} of {study['seeds']} seeds)")
    return left


def suite_difference(out: Path, study: dict, a: str, b: str,
                     settings: Sequence[downstream.Setting]) -> Optional[Tuple[float, float, List[int], List[str]]]:
    """`a` less `b` on the mean of the settings both have complete, seed by seed (a seed's suite
    mean over the same settings for both): the mean difference, the half-width of its 95%
    interval over the seeds both have on every one of those settings, the seeds and the settings."""
    pairs = {s.name: (ra, rb) for s in settings
             if (ra := complete(out, study, s, a)) and (rb := complete(out, study, s, b))}
    if not pairs:
        return None
    seeds = sorted(set.intersection(*(set(downstream.by_seed(ra)) & set(downstream.by_seed(rb))
                                      for ra, rb in pairs.values())))
    if not seeds:
        return None
    per_seed = [statistics.fmean(downstream.by_seed(ra)[k] - downstream.by_seed(rb)[k] for ra, rb in pairs.values())
                for k in seeds]
    mean, half = downstream.interval(per_seed)
    return mean, half, seeds, sorted(pairs)


def reading(out: Path, study: dict) -> List[str]:
    """The goal's questions answered from the figures, each difference with its 95% interval over
    the seeds (paired: a seed's runs differ by the encoder alone), over the runs that are complete:
    continued against start on the suite mean, each task-adaptive model against start on its own
    task (the goal: +1 point), then setting by setting; what has not run is named."""
    lines = []
    settings = suite_settings(study)
    found = suite_difference(out, study, "continued", "start", settings)
    if found:
        mean, half, seeds, names = found
        verdict = ("**behind** beyond the spread: against the goal." if mean + half < 0 else
                   "ahead beyond the spread: the goal is met." if mean - half > 0 else
                   "level within the spread: not measurably behind, so the goal (at least level) is met as far as "
                   f"{len(seeds)} seeds can tell, and no gain is shown.")
        lines.append(f"- Continued against start, test suite mean over the {len(names)} setting(s) both have complete: "
                     f"{downstream.difference_text((mean, half, seeds))}; {verdict}")
    else:
        lines.append("- Continued against start on the suite mean: not measured yet (no setting complete for both).")
    for m in measured(study):
        if not m.init.name.startswith("tapt-"):
            continue
        own = [s for s in settings if s.name in m.settings]
        if not own:
            continue
        parts, found = [], []
        for setting in own:
            ra, rb = complete(out, study, setting, m.init.name), complete(out, study, setting, "start")
            d = downstream.paired_difference(ra, rb) if ra and rb else None
            parts.append(f"{setting.name} " + (downstream.difference_text(d) if d else "not measured yet"))
            found.append(d)
        if any(d is None for d in found):
            verdict = "not measured on every setting yet."
        elif all(d[0] >= 0.01 and d[0] - d[1] > 0 for d in found):
            verdict = "met: at least +1 point, and ahead beyond the spread."
        elif all(d[0] >= 0.01 for d in found):
            verdict = "+1 point by the mean, but the seeds do not tell it from no gain: **not shown**."
        else:
            verdict = "**not met**."
        lines.append(f"- {m.title} against start on its own task (the goal: at least +1 point): "
                     + "; ".join(parts) + f": {verdict}")
    lines += spread_lines(out, study) + probe_lines(out, study)
    left = unfinished(out, study)
    if left:
        lines.append("- Not yet in these figures (seeds still to run): " + "; ".join(left) + ".")
    edges = grid_edges(out, study)
    if edges:
        lines.append("- Chosen at the edge of its grid (a rate past it might have done better; the protocol does not "
                     "look further): " + "; ".join(edges) + ".")
    return lines


def spread_lines(out: Path, study: dict) -> List[str]:
    """Continued against start setting by setting, each difference with its 95% interval over the
    seeds both have (paired)."""
    parts, beyond = [], 0
    for setting in suite_settings(study):
        a, b = (complete(out, study, setting, name) for name in ("continued", "start"))
        d = downstream.paired_difference(a, b) if a and b else None
        if d is None:
            continue
        beyond += abs(d[0]) > d[1]
        parts.append(f"{setting.name} {downstream.difference_text(d)}")
    if not parts:
        return []
    return [f"- Continued against start setting by setting, test difference with its 95% interval over the seeds "
            f"both have: {'; '.join(parts)}; {beyond} of {len(parts)} beyond the spread."]


def probe_gaps(out: Path, study: dict) -> Dict[str, Tuple[float, int]]:
    """"few" / "full" -> (continued minus start, mean linear-probe test score; settings) over the
    settings with few labels and with the full training sets that both have a probe on."""
    settings = suite_settings(study)
    found = {(name, s.name): r["test"][s.metric] for name in ("start", "continued") for s in settings
             if (r := downstream.probe_result(out, s, name)) and "test" in r}
    gaps = {}
    for what, few in (("few", True), ("full", False)):
        group = [s.name for s in settings if (s.train_examples is not None) == few
                 and ("start", s.name) in found and ("continued", s.name) in found]
        if group:
            gaps[what] = (statistics.fmean(found[("continued", n)] - found[("start", n)] for n in group), len(group))
    return gaps


def probe_lines(out: Path, study: dict) -> List[str]:
    """The linear probes' gaps, continued less start, with few labels and with the full sets."""
    gaps = probe_gaps(out, study)
    if not gaps:
        return []
    said = "; ".join(f"{100 * gap:+.1f} points over {n} setting(s) "
                     f"{'with few labels' if what == 'few' else 'with the full training sets'}"
                     for what, (gap, n) in gaps.items())
    return [f"- The frozen vectors (linear probe below, continued minus start; one fit on one training sample "
            f"each, no spread over seeds): {said}."]


def grid_edges(out: Path, study: dict) -> List[str]:
    """`init on setting: rate (highest|lowest)` wherever an initialisation's rate, chosen on dev,
    is the largest or smallest of its grid."""
    found = []
    for m in measured(study):
        for setting in suite_settings(study):
            r = downstream.collect(out, setting, m.init.name) if setting.name in m.settings else None
            if r and len(m.grid) > 1 and len(r["grid"]) == len(m.grid) and r["lr"] in (min(m.grid), max(m.grid)):
                found.append(f"{m.title} on {setting.name}: {r['lr']:g} "
                             f"({'highest' if r['lr'] == max(m.grid) else 'lowest'})")
    return found


def probe_table(out: Path, study: dict) -> List[str]:
    """Per setting, each initialisation's linear-probe test score (and its difference from the
    start model's), then the continued model's mean difference over the settings both have."""
    inits, settings = measured(study), suite_settings(study)
    found = {(m.init.name, s.name): r["test"][s.metric] for m in inits for s in settings
             if s.name in m.settings and (r := downstream.probe_result(out, s, m.init.name)) and "test" in r}
    if not found:
        return ["No linear probe is on record yet (`python -m studies.continual probe`)."]

    def cell(name: str, setting) -> str:
        if setting.name not in next(m.settings for m in inits if m.init.name == name):
            return ""
        if (name, setting.name) not in found:
            return "…"
        score, start = found[(name, setting.name)], found.get(("start", setting.name))
        diff = f" ({100 * (score - start):+.1f})" if name != "start" and start is not None else ""
        return f"{100 * score:.1f}{diff}"
    lines = ["| task | " + " | ".join(m.title for m in inits) + " |", "|---|" + "---|" * len(inits)]
    lines += [f"| {s.title} ({s.metric}) | " + " | ".join(cell(m.init.name, s) for m in inits) + " |" for s in settings]
    return lines


def comparison_plot(out: Path, study: dict, path: Path) -> Optional[str]:
    """Per setting, each initialisation's test mean ± sd, and the floor as a grey line."""
    settings = suite_settings(study)
    inits = measured(study)
    data = {(m.init.name, s.name): r for m in inits for s in settings
            if s.name in m.settings and (r := downstream.collect(out, s, m.init.name)) and r["test"]}
    if not data:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(1.6 * len(settings) + 2, 3.6))
    width = 0.8 / len(inits)
    for k, m in enumerate(inits):
        xs, ys, es = [], [], []
        for i, s in enumerate(settings):
            if (m.init.name, s.name) in data:
                test = data[(m.init.name, s.name)]["test"]
                xs.append(i + (k - (len(inits) - 1) / 2) * width)
                ys.append(100 * statistics.fmean(test))
                es.append(100 * statistics.stdev(test) if len(test) > 1 else 0.0)
        ax.errorbar(xs, ys, yerr=es, fmt="o", markersize=4, capsize=2, label=m.title, color=f"C{k}")
    for i, s in enumerate(settings):
        bar = downstream.floor(out, s)
        test = bar.get("test", {}).get(s.metric) if "error" not in bar else None
        if test is not None:
            ax.hlines(100 * test, i - 0.45, i + 0.45, colors="grey", linestyles="--", linewidth=1)
    ax.set_xticks(range(len(settings)), [s.name for s in settings], rotation=20, fontsize=8)
    ax.set_ylabel("test score (points); floor dashed")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"![test score of each initialisation on each setting, mean and sd over seeds; floors dashed]({path.name})"


def report(study: dict, doc: Path) -> None:
    out = ROOT / study["output"] / "finetune"
    inits = measured(study)
    settings = suite_settings(study)
    titles = {m.init.name: m.title for m in inits}
    tables, findings = [], []
    for setting in settings:
        wanted = [m.init.name for m in inits if setting.name in m.settings]
        names = [n for n in wanted if downstream.collect(out, setting, n)]
        if "start" in names:  # each table as far as its runs have gone, the rest named
            tables += downstream.comparison_table(out, [setting], names, titles, "start")
            waiting = [titles[n] for n in wanted if n not in names]
            tables += (["", f"Still to run on {setting.name}: {', '.join(waiting)}."] if waiting else []) + [""]
        findings += downstream.floor_findings(out, [setting], names, titles)
    plot = comparison_plot(out, study, doc.with_name("continual.png"))
    write_report(doc, fill(TEMPLATE, {
        "study": shown(STUDY_FILE),
        "start": study["start"]["name"],
        "recipe": shown(ROOT / study["continued"]["pretrain"]),
        "data": shown(ROOT / study["continued"]["data"]),
        "pretraining": pretraining_text(study),
        "speed": speed_text(study),
        "heldout": "\n".join(heldout_table(study)),
        "texts": "\n".join(texts_table(study)),
        "growth": growth_text(study),
        "reading": "\n".join(reading(out, study)),
        "probes": "\n".join(probe_table(out, study)),
        "tables": "\n".join(tables) or "No setting has results for the start model yet.",
        "floors": "\n".join(findings) or "- every initialisation with results beats its floor",
        "plot": plot or "(the plot waits for the first results)",
        "seeds": str(study["seeds"]), "close_seeds": str(study["close_seeds"]),
        "grids": "; ".join(f"{k}: {', '.join(f'{v:g}' for v in vs)}" for k, vs in study["grids"].items()),
        "finetune": ", ".join(study["finetune"]),
    }))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies.continual", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("pretrain", "finetune", "probe", "speed", "report"))
    parser.add_argument("--only", nargs="+", help="pretrain: only these runs; finetune, probe: only these initialisations")
    parser.add_argument("--jobs", type=int, default=2, help="fine-tuning or probe runs at once (default 2)")
    parser.add_argument("--doc", default="docs/continual.md", help="report: the document to write (its plot beside it)")
    args = parser.parse_args(argv)
    study = load_study()
    if args.command == "pretrain":
        pretrain(study, args.only or ())
    elif args.command == "finetune":
        finetune(study, args.jobs, args.only or ())
    elif args.command == "probe":
        probes(study, args.jobs, args.only or ())
    elif args.command == "speed":
        speed(study)
    else:
        report(study, ROOT / args.doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
