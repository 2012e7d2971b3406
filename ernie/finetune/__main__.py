"""`python -m ernie.finetune --task NAME --data DIR [--init-model MODEL_DIR] --output DIR`

Trains on the task's train file, evaluates on dev after every epoch and keeps the best epoch
(selected on dev, never on test), for `--seeds` seeds (1..N, or from `--first-seed`). Writes,
under --output: `metrics.json` (each seed's best epoch and its dev scores, the last epoch and
its dev scores, and the best epoch's test scores where the test file is labelled, plus their
median and mean over seeds, as the paper reports dev results), and per seed `seed-N/` with dev
predictions, test predictions in the submission format, the log, the best model (a model
directory that `ernie.export` takes) and `result.json`.
With no --init-model the encoder starts from random initialisation: the baseline.
With --resume, a seed whose `seed-N/result.json` was written by a run of the same task, data,
initialisation and settings is read back instead of trained again, and the seed the run was on
continues from its last checkpoint (`seed-N/checkpoint`, saved at most every
--checkpoint-minutes: `ernie.finetune.resume`), so a killed run ends with the same metrics.json,
predictions and models as the uninterrupted one.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

from ernie.finetune import resume
from ernie.finetune.examples import DataError
from ernie.finetune.settings import SettingsError, config_for, load_settings
from ernie.finetune.tasks import get_task
from ernie.finetune.trainer import DEFAULT_MODEL_CONFIG, FinetuneJob, check_fits_model, describe_labels, load_encoder, read_data, resolve_amp, resolve_casing
from ernie.formats.checkpoint import CheckpointError
from ernie.model.config import ConfigError, ErnieConfig
from ernie_common.cli import MAX_SEED, output_dir, positive_int, random_seed
from ernie_common.fileio import atomic_write_text
from ernie_common.tokenization import VocabError
from propeller.device import DeviceError, process_place


def summarize(results: List[Dict]) -> Dict:
    """Median and mean over seeds of every score: the best epoch's dev (and test), the last
    epoch's dev (`last_dev`)."""
    summary = {}
    for split in ("dev", "last_dev", "test"):
        runs = [r[split] for r in results if split in r]
        if runs:
            summary[split] = {stat: {k: float(fn([run[k] for run in runs])) for k in runs[0]}
                              for stat, fn in (("median", np.median), ("mean", np.mean))}
    return summary


def run_fingerprint(task, settings, config: ErnieConfig, vocab, params, data) -> str:
    """A digest of everything a seed's result depends on besides the seed: the task, the
    settings, the model config, the initial parameters, the vocabulary, the examples read, and
    where it computes, other than on a CPU with the fused kernels (a GPU, or the kernels off:
    other kernels, other dropout draws; a seed resumed there would be neither run's)."""
    from ernie.kernels import cpu_kernels
    from propeller.device import cuda_device_count, device_choice
    device, fused = device_choice(os.environ, cuda_device_count())[0], cpu_kernels.enabled()
    where = () if (device, fused) == ("cpu", True) else (device, fused)
    digest = hashlib.sha256(repr((task, settings, config.to_dict(), *where)).encode("utf-8"))
    for name in sorted(params or {}):
        digest.update(name.encode("utf-8"))
        digest.update(np.ascontiguousarray(params[name]).tobytes())
    digest.update(Path(vocab).read_bytes())
    digest.update(repr((data.train, data.dev, data.test, data.extra_test)).encode("utf-8"))
    return digest.hexdigest()


def _finished_seed(seed_dir: Path, fingerprint: str):
    """The seed's result as its result.json holds it, if that run matches `fingerprint`."""
    try:
        record = json.loads((seed_dir / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record.get("result") if isinstance(record, dict) and record.get("run") == fingerprint else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ernie.finetune", description=__doc__.split("\n\n")[1])
    parser.add_argument("--task", required=True, help="GLUE or Chinese task name (see ernie/finetune/tasks.py)")
    parser.add_argument("--data", required=True, help="directory with the task's files")
    parser.add_argument("--init-model", help="model directory (pre-trained or converted); omit for random init")
    parser.add_argument("--output", required=True, type=output_dir)
    parser.add_argument("--seeds", type=positive_int, default=1, help="how many seeds")
    parser.add_argument("--first-seed", type=random_seed, default=1, help="the first seed (seeds run from it up)")
    parser.add_argument("--config", help="settings YAML (default configs/finetune/TASK.yaml)")
    parser.add_argument("--preset", help="a preset of the config (the paper's base or large column)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting")
    parser.add_argument("--vocab", help="vocab.txt for random initialisation")
    parser.add_argument("--model-config", default=str(DEFAULT_MODEL_CONFIG),
                        help="model config for random initialisation")
    parser.add_argument("--dev-file", help="dev file name inside --data (replaces the task's)")
    parser.add_argument("--test-file", help="test file name inside --data (replaces the task's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--resume", action="store_true",
                        help="read back the seeds an identical earlier run finished (seed-N/result.json) and "
                             "continue a seed it left unfinished from its checkpoint")
    parser.add_argument("--checkpoint-minutes", type=float, default=10.0,
                        help="the least time between two saves of a training seed's state (seed-N/checkpoint, "
                             "removed when the seed ends; default 10)")
    args = parser.parse_args(argv)
    if args.checkpoint_minutes < 0:
        parser.error(f"--checkpoint-minutes must be at least 0, got {args.checkpoint_minutes}")
    if args.first_seed + args.seeds - 1 > MAX_SEED:
        parser.error(f"--first-seed {args.first_seed} and --seeds {args.seeds} run seeds past {MAX_SEED}")
    try:
        process_place()  # a device the launcher names but this process cannot use: said before the data is read
        task = get_task(args.task)
        task = dataclasses.replace(task, **{k: v for k, v in (("dev_file", args.dev_file),
                                                             ("test_file", args.test_file)) if v})
        settings = resolve_amp(load_settings(args.config or config_for(task.name), args.preset, args.set))
        config, params, vocab = load_encoder(args.init_model, args.vocab, args.model_config)
        settings = resolve_casing(settings, vocab)
        check_fits_model(settings, config)
        data = read_data(task, args.data, settings.max_train_examples)
        job = FinetuneJob(task, settings, config, vocab, params, data)
    except (KeyError, DataError, SettingsError, CheckpointError, ConfigError, VocabError, DeviceError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if data.skipped:
        print(f"skipped: {dict(data.skipped)}", file=sys.stderr)
    labels = describe_labels(task, data.train)
    if labels:
        print(labels, file=sys.stderr)
    output = Path(args.output)
    results = []
    fingerprint = run_fingerprint(task, settings, config, vocab, params, data)
    (output / "metrics.json").unlink(missing_ok=True)  # an earlier run's, which this one's replaces at its end
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        seed_dir = output / f"seed-{seed}"
        result = _finished_seed(seed_dir, fingerprint) if args.resume else None
        if result is None:
            # an earlier run's result and model, which this seed's replace when it ends: a run
            # stopped before then must not leave them looking like its own
            (seed_dir / "result.json").unlink(missing_ok=True)
            shutil.rmtree(seed_dir / "model", ignore_errors=True)
            checkpointing = resume.Checkpointing(fingerprint, 60 * args.checkpoint_minutes, args.resume)
            try:
                result = job.run_seed(seed, seed_dir, progress=not args.quiet, checkpointing=checkpointing)
            except MemoryError as err:  # Paddle raises a failed allocation (a GPU's memory, or the host's) so
                print(f"error: seed {seed}: out of memory ({err}): a device holds fewer sequences with "
                      f"max_sequences_per_device (the batch accumulated over more micro-batches, the same update), "
                      f"and evaluates fewer at a time with a smaller eval_batch_size; --resume continues from "
                      f"{seed_dir / resume.CHECKPOINT} if one was saved", file=sys.stderr)
                return 1
            atomic_write_text(seed_dir / "result.json", json.dumps({"run": fingerprint, "result": result}, indent=1))
            resume.remove(seed_dir)
        else:
            print(f"seed {seed}: read back from {seed_dir / 'result.json'}")
        print(f"seed {seed}: best epoch {result['best_epoch']}, dev {result['dev']}"
              + (f", test {result['test']}" if "test" in result else "")
              + f"; last epoch {result['last_epoch']}, dev {result['last_dev']}")
        results.append(result)
    report = {"task": task.name, "main_metric": task.main_metric,
              "init_model": args.init_model or "random", "settings": dataclasses.asdict(settings),
              "skipped": dict(data.skipped), "seeds": results, **summarize(results)}
    atomic_write_text(output / "metrics.json", json.dumps(report, indent=1))
    print(f"{task.name} dev {task.main_metric} over {len(results)} seed(s): "
          f"{_median_mean(report['dev'], task.main_metric)} (best epoch), "
          f"{_median_mean(report['last_dev'], task.main_metric)} (last epoch); {output / 'metrics.json'}")
    return 0


def _median_mean(summary: Dict, metric: str) -> str:
    return f"median {summary['median'][metric]:.4f}, mean {summary['mean'][metric]:.4f}"


if __name__ == "__main__":
    sys.exit(main())
