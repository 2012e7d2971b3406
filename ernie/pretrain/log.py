"""A pre-training run's `log.jsonl`: reading its records, and each task's final loss, set against
the unigram entropy of the shards' tokens (what a masked LM that knows only token frequencies
scores) for the tasks that predict tokens (`DataTask.compared_with_unigram_entropy`)."""
from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path
from typing import Dict, List, Optional

from ernie_common import tasks as registry

FINAL_WINDOW = 5  # logging records a task's final loss is averaged over
OVER_ENTROPY = "_over_entropy"  # `<task>_over_entropy`: a task's final loss over the unigram entropy


def read_log(run_dir) -> List[dict]:
    path = Path(run_dir) / "log.jsonl"
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read {path}: {err}") from None


def final_value(records: List[dict], task: str, key: str = "loss", window: int = FINAL_WINDOW) -> Optional[float]:
    """Mean of `task/key` over the last `window` records that have it; None if none has."""
    values = [r[f"{task}/{key}"] for r in records if f"{task}/{key}" in r]
    return statistics.fmean(values[-window:]) if values else None


HELDOUT_LOSS, HELDOUT_ACCURACY = "heldout_loss/", "heldout_accuracy/"  # keys of the held-out records
PACE_KEYS = ("tokens_per_s",)  # the values of a record that depend on the machine's speed, not on the run


def trajectory(records: List[dict]) -> str:
    """A digest of what a run computed: every logged value, step by step, but its pace. Two runs
    of one trajectory made one model: the loss of every logged window follows from all the
    parameters at its steps, so a difference in any one of them at any step shows, to the last
    digit, in the values logged after it (and a held-out record at the end is the final model's)."""
    kept = [{k: v for k, v in r.items() if k not in PACE_KEYS} for r in records]
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode("utf-8")).hexdigest()


def heldout_records(records: List[dict]) -> List[dict]:
    """The records of the held-out evaluation (`heldout:` in the config), in step order."""
    return [r for r in records if any(k.startswith(HELDOUT_LOSS) for k in r)]


def heldout_losses(records: List[dict]) -> Dict[int, Dict[str, float]]:
    """step -> task -> held-out loss, of the held-out records of a run's log."""
    return {r["step"]: {k[len(HELDOUT_LOSS):]: v for k, v in r.items() if k.startswith(HELDOUT_LOSS)}
            for r in heldout_records(records)}


def training_records(records: List[dict]) -> List[dict]:
    """The records of the training windows (the held-out evaluation's left out)."""
    return [r for r in records if not any(k.startswith(HELDOUT_LOSS) for k in r)]


def compared_with_unigram_entropy(task: str) -> bool:
    """Whether the summary sets `task`'s loss against the unigram entropy, as the task says; a
    task whose module is not loaded here (a user's, in a log read alone) is not compared."""
    try:
        return registry.get(task).compared_with_unigram_entropy
    except registry.TaskError:
        return False


def summary(records: List[dict], unigram_entropy: Optional[float]) -> Dict:
    """Each task's final loss and accuracy; the last held-out evaluation's losses and accuracies,
    where the run had one; and, for each task that predicts tokens, its final loss as a share of
    the entropy (`<task>_over_entropy`)."""
    heldout = heldout_records(records)
    records = training_records(records)
    tasks = sorted({k[:-5] for r in records for k in r if k.endswith("/loss")})
    out = {"steps": records[-1]["step"] if records else 0,
           "final_loss": {t: final_value(records, t) for t in tasks},
           "final_accuracy": {t: final_value(records, t, "accuracy") for t in tasks},
           "unigram_entropy": unigram_entropy}
    if heldout:
        last = heldout[-1]
        out["heldout_loss"] = {k[len(HELDOUT_LOSS):]: v for k, v in last.items() if k.startswith(HELDOUT_LOSS)}
        out["heldout_accuracy"] = {k[len(HELDOUT_ACCURACY):]: v for k, v in last.items()
                                   if k.startswith(HELDOUT_ACCURACY)}
    for task, loss in out["final_loss"].items():
        if loss is not None and unigram_entropy and compared_with_unigram_entropy(task):
            out[task + OVER_ENTROPY] = loss / unigram_entropy
    return out


def summary_line(values: Dict) -> Optional[str]:
    """A line for each task whose final loss the summary set against the unigram entropy."""
    lines = [f"{task.replace('_', ' ')}: final loss {loss:.3f} nats = {values[task + OVER_ENTROPY]:.3f} x the "
             f"unigram entropy of its tokens ({values['unigram_entropy']:.3f} nats; mean of the last "
             f"{FINAL_WINDOW} logged windows)"
             for task, loss in values.get("final_loss", {}).items() if task + OVER_ENTROPY in values]
    return "\n".join(lines) or None
