"""The controlled runs behind docs/pretraining.md, and the document itself.

    python scripts/pretraining_study.py ablation [--output output/study]   # knowledge masking alone, one change a run
    python scripts/pretraining_study.py finetune-check [--output output/study]
    python scripts/pretraining_study.py report [--output output/study] [--doc docs/pretraining.md]

`ablation` pre-trains knowledge masking alone on the demo corpus, 1,500 steps a run, changing one
setting at a time from the demo's release settings, with `python -m ernie.pretrain` and with the
Hugging Face reference (`scripts/hf_reference_pretrain.py`) on the same batches. `finetune-check`
fine-tunes one of those models and its random twin on Brown genre with `python -m ernie.finetune`
and with an independent PyTorch loop (`scripts/hf_reference_finetune.py`). `report` reads every
run's files (and those of the recipes and of `scripts/downstream.py`, where they exist) and writes
the document. Runs whose outputs exist are skipped, so a killed study continues where it stopped.
About 2 hours on 2 CPU cores (`scripts/pretraining_study.sh` runs everything, recipes included).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from downstream import report_table  # noqa: E402
from ernie.pretrain.log import read_log, summary  # noqa: E402

DEMO_DATA = "configs/data/demo_en.yaml"
STEPS = 1500
# The demo's settings before this study (configs/pretrain/demo_en.yaml at 025a20a).
RELEASE = {"model": {"preset": "configs/model/tiny.yaml"}, "mask_ratio": 0.15, "batch_tokens": 1024,
           "optimization": {"learning_rate": 5.0e-4, "warmup_steps": 50, "lr_schedule": "noam"}}
LINEAR = {"lr_schedule": "linear", "warmup_steps": 150}


@dataclass
class Run:
    name: str
    change: str                       # what differs from the run it is compared with
    base: Optional[str] = None        # the run it changes (None: RELEASE)
    optimization: Dict = field(default_factory=dict)
    model: Dict = field(default_factory=dict)
    mask_ratio: Optional[float] = None
    batch_tokens: Optional[int] = None
    dropout: Optional[float] = None
    reference: bool = False           # trained by the Hugging Face reference instead


RUNS = [
    Run("release", "the demo's settings before this study: noam, peak 5e-4, warm-up 50, dropout 0.1, "
                   "15% masking, batches of 1,024 tokens, tiny (4 x 256)"),
    Run("release-hf", "the same in Hugging Face's PyTorch ERNIE, same batches", "release", reference=True),
    Run("linear-5e-4", "linear warm-up (150) and decay to 0 instead of noam", "release", optimization=LINEAR),
    Run("linear-1e-3", "peak learning rate 1e-3", "linear-5e-4", optimization={"learning_rate": 1e-3}),
    Run("linear-2e-3", "peak learning rate 2e-3", "linear-5e-4", optimization={"learning_rate": 2e-3}),
    Run("no-dropout", "no dropout while pre-training", "linear-1e-3", dropout=0.0),
    Run("mask-40", "40% of the units masked instead of 15%", "no-dropout", mask_ratio=0.4),
    Run("mask-40-hf", "the same in Hugging Face's PyTorch ERNIE, same batches", "mask-40", reference=True),
    Run("no-task-id", "no task embedding", "mask-40", model={"use_task_id": False}),
    Run("2-layers", "2 layers instead of 4", "mask-40", model={"num_hidden_layers": 2}),
    Run("micro", "micro (4 x 128, 2 heads)", "mask-40", model={"preset": "configs/model/micro.yaml"}),
    Run("micro-2048", "batches of 2,048 tokens", "micro", batch_tokens=2048),
    Run("micro-4096", "batches of 4,096 tokens", "micro", batch_tokens=4096),
]
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


def _python(*args, log: Path, threads: Optional[int] = None) -> None:
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    with open(log, "w", encoding="utf-8") as f:
        subprocess.run([sys.executable, *args], check=True, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env)


def shards(out: Path, mask_ratio: float) -> Path:
    """The demo corpus's shards with the given masking ratio (the demo's vocabulary)."""
    data = yaml.safe_load((ROOT / DEMO_DATA).read_text(encoding="utf-8"))
    vocab = ROOT / data["vocab"]
    if not vocab.is_file():
        _python("-m", "data_gen", "build-vocab", "--input", data["input"], "--size", "8000", "--lang", "en",
                "--output", str(vocab), log=out / "vocab.log")
    target = out / f"shards-mask-{mask_ratio:g}"
    config = {**data, "output": str(target), "mask_ratio": mask_ratio}
    path = out / f"data-mask-{mask_ratio:g}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    _python("-m", "data_gen", "make", "--config", str(path), log=out / f"make-mask-{mask_ratio:g}.log")
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
            _python("scripts/hf_reference_pretrain.py", "--config", str(run_dir / "study.yaml"),
                    "--output", str(run_dir), log=run_dir / "train.log")
        else:
            _python("-m", "ernie.pretrain", "--config", str(run_dir / "study.yaml"), "--quiet",
                    log=run_dir / "train.log")
        (run_dir / "wall_s").write_text(f"{time.time() - start:.0f}\n")


# ---- fine-tuning check ---------------------------------------------------------------------------

CHECK_MODEL = "mask-40"   # the ablation run whose model is fine-tuned
CHECK = {"data": "data/brown-genre", "examples": 2000, "epochs": 3, "lr": 3e-4, "seeds": 3, "max_seq_len": 96}


def finetune_check(out: Path) -> None:
    model = out / "ablation" / CHECK_MODEL / "model"
    if not (ROOT / CHECK["data"]).is_dir():
        _python("-m", "data_gen", "fetch", "brown-genre", "--dir", str(Path(CHECK["data"]).parent),
                log=out / "fetch.log")
    jobs = []
    for init in ("pretrained", "random"):
        run_dir = out / "finetune-check" / f"paddle-{init}"
        source = ["--init-model", str(model)] if init == "pretrained" else \
            ["--vocab", str(model / "vocab.txt"), "--model-config", str(model / "ernie_config.json")]
        jobs.append((run_dir, ["-m", "ernie.finetune", "--task", "brown-genre", "--data", CHECK["data"], *source,
                               "--output", str(run_dir), "--seeds", str(CHECK["seeds"]), "--quiet",
                               "--set", f"max_train_examples={CHECK['examples']}", "--set", f"epochs={CHECK['epochs']}",
                               "--set", f"learning_rate={CHECK['lr']}", "--set", f"max_seq_len={CHECK['max_seq_len']}",
                               "--set", "batch_size=32"]))
        run_dir = out / "finetune-check" / f"hf-{init}"
        jobs.append((run_dir, ["scripts/hf_reference_finetune.py", "--model", str(model), "--data", CHECK["data"],
                               "--output", str(run_dir), "--seeds", str(CHECK["seeds"]),
                               "--max-train-examples", str(CHECK["examples"]), "--epochs", str(CHECK["epochs"]),
                               "--learning-rate", str(CHECK["lr"]), "--max-seq-len", str(CHECK["max_seq_len"]),
                               "--batch-size", "32", *(["--random"] if init == "random" else [])]))

    def one(job):
        run_dir, args = job
        if (run_dir / "metrics.json").is_file():
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        print(f"finetune-check: {run_dir.name}", flush=True)
        _python(*args, log=run_dir.parent / f"{run_dir.name}.log", threads=1)

    with ThreadPoolExecutor(2) as pool:  # two single-threaded runs at once: faster than one on two cores
        list(pool.map(one, jobs))


# ---- report --------------------------------------------------------------------------------------

def _read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _entropy(run_dir: Path) -> float:
    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) \
        if (run_dir / "config.yaml").is_file() else yaml.safe_load((run_dir / "study.yaml").read_text(encoding="utf-8"))
    return _read_json(Path(config["data"]) / "manifest.json")["unigram_entropy"]["nats"]


def ablation_table(out: Path) -> List[str]:
    lines = ["| run | change | final loss | × entropy | tokens seen | wall time | tokens/s |",
             "|---|---|---|---|---|---|---|"]
    for run in RUNS:
        run_dir = out / "ablation" / run.name
        if not (run_dir / "wall_s").is_file():
            continue
        records = read_log(run_dir)
        values = summary(records, _entropy(run_dir))
        steps = records[-1]["step"]
        config = yaml.safe_load((run_dir / "study.yaml").read_text(encoding="utf-8"))
        tokens = steps * config["batch_tokens"]
        wall = int((run_dir / "wall_s").read_text())
        rate = statistics.fmean(r["tokens_per_s"] for r in records[len(records) // 10:])
        against = f"{run.change}" + (f" (from {run.base})" if run.base else "")
        lines.append(f"| {run.name} | {against} | {values['final_loss']['knowledge_masking']:.3f} | "
                     f"{values['knowledge_masking_over_entropy']:.3f} | {tokens / 1e6:.1f} M padded | "
                     f"{wall / 60:.1f} min | {rate:,.0f} |")
    return lines


def check_table(out: Path) -> List[str]:
    base = out / "finetune-check"
    scores = {}
    for impl in ("paddle", "hf"):
        for init in ("pretrained", "random"):
            path = base / f"{impl}-{init}" / "metrics.json"
            if not path.is_file():
                return []
            report = _read_json(path)
            scores[impl, init] = ([s["dev"]["acc"] for s in report["seeds"]] if impl == "paddle"
                                  else report["dev_accuracy"])
    lines = ["| fine-tuning implementation | pre-trained | random | pre-trained − random |", "|---|---|---|---|"]
    for impl, title in (("paddle", "`ernie.finetune` (Paddle static program)"),
                        ("hf", "Hugging Face `ErnieForSequenceClassification`, PyTorch loop")):
        pre, rnd = scores[impl, "pretrained"], scores[impl, "random"]
        diffs = [a - b for a, b in zip(pre, rnd)]
        lines.append(f"| {title} | {_pm(pre)} | {_pm(rnd)} | {_pm(diffs, signed=True)} |")
    return lines


def _pm(values, signed=False) -> str:
    mean, sd = 100 * statistics.fmean(values), 100 * (statistics.stdev(values) if len(values) > 1 else 0.0)
    return f"{mean:+.1f} ± {sd:.1f}" if signed else f"{mean:.1f} ± {sd:.1f}"


def report(out: Path, doc: Path) -> None:
    lines = ["# Pre-training that teaches the encoder", "",
             "Written by `python scripts/pretraining_study.py report` from the runs' files; "
             "`bash scripts/pretraining_study.sh` reruns everything (about N hours on 2 CPU cores).", ""]
    lines += ["## Knowledge masking alone: one change at a time", ""] + ablation_table(out) + [""]
    check = check_table(out)
    if check:
        lines += ["## The fine-tuning path", ""] + check + [""]
    for name in ("small_en", "small_zh"):
        table = report_table(out / "downstream" / name) if (out / "downstream" / name).is_dir() else ""
        if table.count("\n") > 1:
            lines += [f"## Downstream: {name}", "", table, ""]
    doc.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {doc}")


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
