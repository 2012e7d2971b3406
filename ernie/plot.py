"""`python -m ernie.plot RUN_DIR`: per-task loss curves of a pre-training run, stage boundaries
marked, written to RUN_DIR/loss_curves.png (from RUN_DIR/log.jsonl)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ernie_common.fileio import atomic_path  # noqa: E402
from ernie.pretrain.log import read_log  # noqa: E402


def plot_run(run_dir) -> Path:
    run_dir = Path(run_dir)
    records = read_log(run_dir)
    if not records:
        raise ValueError(f"{run_dir / 'log.jsonl'} has no records yet")
    tasks = sorted({key[:-5] for r in records for key in r if key.endswith("/loss")},
                   key=lambda t: min(r["step"] for r in records if f"{t}/loss" in r))
    fig, ax = plt.subplots(figsize=(10, 5.5))
    for task in tasks:
        points = [(r["step"], r[f"{task}/loss"]) for r in records if f"{task}/loss" in r]
        ax.plot(*zip(*points), label=task, linewidth=1.4)
    stage_starts = [b["step"] for a, b in zip(records, records[1:]) if b["stage"] != a["stage"]]
    for step in stage_starts:
        ax.axvline(step, color="grey", linestyle="--", linewidth=0.8)
    for number, step in enumerate([records[0]["step"]] + stage_starts, start=records[0]["stage"]):
        ax.annotate(f"stage {number}", (step, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(3, -12), textcoords="offset points", fontsize=8, color="grey")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (mean over the steps of each logging window)")
    ax.set_title(f"ERNIE 2.0 pre-training: {run_dir.name}")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    out = run_dir / "loss_curves.png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ernie.plot", description=__doc__)
    parser.add_argument("run_dir", help="the output directory of `python -m ernie.pretrain`")
    args = parser.parse_args(argv)
    try:
        print(f"wrote {plot_run(args.run_dir)}")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
