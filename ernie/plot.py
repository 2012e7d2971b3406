"""`python -m ernie.plot RUN_DIR`: per-task loss curves of a pre-training run, stage boundaries
marked, written to RUN_DIR/loss_curves.png (from RUN_DIR/log.jsonl). A run with a held-out
evaluation (`heldout:`) gets one more panel a task below: the held-out loss of every task of the
schedule at each evaluation, trained yet or not, so forgetting shows where a task's loss rises
after its stage. The title names the run by its config file (`run_name`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ernie.pretrain.log import HELDOUT_LOSS, heldout_records, read_log, training_records  # noqa: E402
from ernie_common.fileio import atomic_path  # noqa: E402


def _mark_stages(ax, stage_starts, first_step, first_stage, label: bool) -> None:
    for step in stage_starts:
        ax.axvline(step, color="grey", linestyle="--", linewidth=0.8)
    if label:
        for number, step in enumerate([first_step] + stage_starts, start=first_stage):
            ax.annotate(f"stage {number}", (step, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(3, -12), textcoords="offset points", fontsize=8, color="grey")


# The first line of a run's config.yaml, before the resolved config: the config file it was started with.
CONFIG_LINE = "# config: "


def run_name(run_dir) -> str:
    """What the plot's title calls the run: the name of the config file it was started with
    (`demo_en` for configs/pretrain/demo_en.yaml), read from the first line of RUN_DIR/config.yaml,
    `# config: PATH`, where the trainer records it above the resolved config; for a run without
    that line, the run directory with its parent (`demo/pretrain`, not `pretrain` alone)."""
    run_dir = Path(run_dir).resolve()
    try:
        with open(run_dir / "config.yaml", encoding="utf-8") as f:
            first = f.readline().strip()
    except OSError:
        first = ""
    if first.startswith(CONFIG_LINE) and first[len(CONFIG_LINE):].strip():
        return Path(first[len(CONFIG_LINE):].strip()).stem
    return f"{run_dir.parent.name}/{run_dir.name}" if run_dir.parent.name else run_dir.name


def draw(run_dir):
    """The figure of `plot_run`, not saved."""
    run_dir = Path(run_dir)
    everything = read_log(run_dir)
    records, heldout = training_records(everything), heldout_records(everything)
    if not records:
        raise ValueError(f"{run_dir / 'log.jsonl'} has no records yet")
    tasks = sorted({key[:-5] for r in records for key in r if key.endswith("/loss")},
                   key=lambda t: min(r["step"] for r in records if f"{t}/loss" in r))
    evaluated = [t for t in tasks if any(HELDOUT_LOSS + t in r for r in heldout)]
    evaluated += sorted({k[len(HELDOUT_LOSS):] for r in heldout for k in r if k.startswith(HELDOUT_LOSS)} - set(tasks))
    fig = plt.figure(figsize=(10, 5.5 + (3.0 if evaluated else 0.0)))
    grid = fig.add_gridspec(2 if evaluated else 1, max(1, len(evaluated)), height_ratios=[5.5, 3.0] if evaluated else None)
    ax = fig.add_subplot(grid[0, :])
    for task in tasks:
        points = [(r["step"], r[f"{task}/loss"]) for r in records if f"{task}/loss" in r]
        ax.plot(*zip(*points), label=task, linewidth=1.4)
    stage_starts = [b["step"] for a, b in zip(records, records[1:]) if b["stage"] != a["stage"]]
    _mark_stages(ax, stage_starts, records[0]["step"], records[0]["stage"], label=True)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (mean over the steps of each logging window)")
    ax.set_title(f"ERNIE 2.0 pre-training: {run_name(run_dir)}")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    for column, task in enumerate(evaluated):
        panel = fig.add_subplot(grid[1, column])
        points = [(r["step"], r[HELDOUT_LOSS + task]) for r in heldout if HELDOUT_LOSS + task in r]
        panel.plot(*zip(*points), marker="o", markersize=3, linewidth=1.2, color=f"C{column}")
        _mark_stages(panel, stage_starts, records[0]["step"], records[0]["stage"], label=False)
        panel.set_title(f"held-out: {task}", fontsize=8)
        panel.tick_params(labelsize=7)
        panel.grid(alpha=0.3)
        if column == 0:
            panel.set_ylabel("held-out loss", fontsize=8)
    return fig


def plot_run(run_dir) -> Path:
    """Draws RUN_DIR/loss_curves.png from RUN_DIR/log.jsonl; returns its path."""
    run_dir = Path(run_dir)
    fig = draw(run_dir)
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
