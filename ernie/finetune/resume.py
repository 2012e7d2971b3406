"""A fine-tuning seed's state, saved as it trains, so that a killed run resumes where it stopped
and ends with the uninterrupted run's result, predictions and model.

A seed's run is a function of its fingerprint (the task, settings, model, initial parameters,
vocabulary and examples: `ernie.finetune.__main__.run_fingerprint`) and the seed: the batches of
an epoch are drawn by (seed, epoch), the learning rate by the step, dropout is seeded per step.
So the state after a step is the program's variables (parameters and optimizer moments) and the
dev history (the best epoch's scores and parameters, the last epoch's scores): OUT/seed-N/
checkpoint/ holds them, written at most every few minutes (`--checkpoint-minutes`) and replaced
whole, and is removed once the seed's result is written. A checkpoint of another run (other
settings or data) is not read.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from ernie.formats.checkpoint import CheckpointError, load_params, save_params
from ernie_common.fileio import atomic_directory

CHECKPOINT = "checkpoint"
_STATE, _BEST, _PROGRESS = "state.safetensors", "best.safetensors", "progress.json"


@dataclass(frozen=True)
class Saved:
    """A checkpoint as read: the step it follows, the runner's variables, the dev history."""
    step: int
    state: Dict[str, np.ndarray]
    best: Optional[tuple]
    last: Optional[tuple]
    best_params: Optional[Dict[str, np.ndarray]]


@dataclass(frozen=True)
class Checkpointing:
    """How a seed's run saves its state: `run`, its fingerprint; `seconds`, the least time
    between two saves; `resume`, whether it starts from a checkpoint of the same run."""
    run: str
    seconds: float
    resume: bool


def save(seed_dir: Path, run: str, step: int, state: Dict[str, np.ndarray], history) -> None:
    """The state after `step` (the runner's variables, the dev history) in SEED_DIR/checkpoint."""
    with atomic_directory(seed_dir / CHECKPOINT) as tmp:
        save_params(tmp / _STATE, state)
        if history.best_params is not None:
            save_params(tmp / _BEST, history.best_params)
        (tmp / _PROGRESS).write_text(json.dumps({"run": run, "step": step, "best": history.best,
                                                 "last": history.last}, indent=1), encoding="utf-8")


def load(seed_dir: Path, run: str) -> Optional[Saved]:
    """SEED_DIR/checkpoint as read; None where there is none, or it is another run's or
    unreadable (said so)."""
    directory = seed_dir / CHECKPOINT
    try:
        progress = json.loads((directory / _PROGRESS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if progress.get("run") != run:
        print(f"{directory}: a checkpoint of another run (other settings, model or data): not resumed", flush=True)
        return None
    try:
        state = load_params(directory / _STATE)
        best = load_params(directory / _BEST) if progress["best"] else None
    except (CheckpointError, ValueError, OSError) as err:  # written whole, unless a disk or a hand broke it
        print(f"{directory}: unreadable ({err}): not resumed", flush=True)
        return None
    return Saved(progress["step"], state, tuple(progress["best"]) if progress["best"] else None,
                 tuple(progress["last"]) if progress["last"] else None, best)


def remove(seed_dir: Path) -> None:
    shutil.rmtree(seed_dir / CHECKPOINT, ignore_errors=True)
