"""Running the project's commands for a study: each in a subprocess with its own thread count and
log file, several at once, a failure named at the end rather than stopping the others."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence

import yaml

import ernie
from data_gen.shards import every_shard
from ernie.kernels.cpu_runtime import child_environment, math_threads, usable_cores
from ernie.pretrain.log import read_log, trajectory
from ernie_common.fileio import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


def shards_of(data_config: Path) -> Path:
    """Where a data config of the repository writes its shards (its `output`, from the root)."""
    return ROOT / yaml.safe_load(Path(data_config).read_text(encoding="utf-8"))["output"]


def shards_made(shards: Path) -> bool:
    """Whether a folder holds made shards: its manifest (which `make` removes first, so a stopped
    make has none) and every shard it lists (the manifest alone is among a study's records, and
    comes to a new machine without them)."""
    manifest = shards / "manifest.json"
    if not manifest.is_file():
        return False
    return all((shards / s["file"]).is_file() for s in every_shard(json.loads(manifest.read_text(encoding="utf-8"))))


def make_shards(data_config: Path) -> None:
    """A study's shards (run_pretrain.sh with DATA_ONLY=1: the corpus, its vocabulary, data_gen
    make), made once for the study: made again after a change to data generation, they would stop
    its runs' resume (a resume refuses shards remade since its checkpoint)."""
    if not shards_made(shards_of(data_config)):
        subprocess.run(["bash", "run_pretrain.sh"], check=True, cwd=ROOT,
                       env=child_environment(DATA_ONLY="1", DATA_CONFIG=str(data_config)))


def model_saved(model: Path) -> bool:
    """Whether a model directory holds its parameters on this machine (a study's records come
    to a new machine without them)."""
    return (model / "params.safetensors").is_file()


def pretrain_run(run_dir: Path, args: Sequence[str], dependents: Iterable[Path] = (),
                 threads: Optional[int] = None) -> None:
    """`python -m ernie.pretrain ARGS --quiet` for a study's run writing to `run_dir`, unless it has
    finished on this machine (`pretraining_finished`): resumed where it stopped, its output to
    RUN_DIR.log. `dependents`: the fine-tuning records of its model, which go where a run made
    again makes another model (`settle_remade`)."""
    if not pretraining_finished(run_dir, run_dir / "model", dependents):
        resume = ["--resume"] if (run_dir / "checkpoints" / "latest").is_file() else []
        print(f"pre-training {run_dir} (log: {run_dir}.log)", flush=True)
        run_python(["-m", "ernie.pretrain", *args, "--quiet", *resume], log=Path(f"{run_dir}.log"), threads=threads)
    settle_remade(run_dir)


def pretraining_finished(run_dir: Path, model: Path, dependents: Iterable[Path] = ()) -> bool:
    """Whether a study's pre-training run has finished with its model on this machine.

    A study's records (summaries, logs, configs, fine-tuning metrics: the small files `.gitignore`
    lets into the repository under output/) outlive the machine; its models and checkpoints do
    not. A run whose records are the repository's, unchanged, with neither its model nor a
    checkpoint here, came from another machine: it is made again from its first step, its
    records removed (git keeps them). Its `dependents` (the fine-tuning records of the model it
    lost) stay until the run made again ends, and then go unless it made the same model
    (`settle_remade`): no table may mix two models' scores, and a run is deterministic on one
    kind of machine, so its hours of fine-tuning need not be lost with the machine. Records that
    need no lost model (a released start model's, random initialisation's, floors) stay.
    Records without model or checkpoint that are not the repository's (a run starting in another
    process, before its first checkpoint; a model moved away) are an error, never removed."""
    if model_saved(model) or (run_dir / "checkpoints").is_dir() or not run_dir.exists():
        return (run_dir / "summary.json").is_file()
    if not any(p.is_file() for p in run_dir.rglob("*")):  # made, and stopped before it wrote anything
        return False
    if not _committed_unchanged(run_dir):
        raise SystemExit(f"{run_dir}: a run's records without its model ({model}) or a checkpoint, not the "
                         f"repository's: another process may be starting it (no checkpoint yet), or its model was "
                         f"moved; remove {run_dir} to pre-train it again")
    recorded = remade_record(run_dir)
    if not recorded.is_file():  # else a run made again before, stopped: the first record is what counts
        try:
            made = trajectory(read_log(run_dir))
        except ValueError:  # no log to compare with: the run made again cannot be shown to be the same
            made = None
        kept = sorted(str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p) for p in dependents if p.exists())
        atomic_write_text(recorded, json.dumps({"params_sha256": _summary(run_dir).get("params_sha256"),
                                                "trajectory": made, "dependents": kept}, indent=1) + "\n")
    waiting = len(json.loads(recorded.read_text(encoding="utf-8"))["dependents"])
    print(f"{run_dir}: the repository's records of a run made on another machine, without its model or a "
          f"checkpoint; pre-training it again from its first step (git keeps the records)"
          + (f"; its model's {waiting} fine-tuning records stay if it makes the same model" if waiting else ""),
          flush=True)
    shutil.rmtree(run_dir)
    return False


def _summary(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def remade_record(run_dir: Path) -> Path:
    """RUN_DIR.recorded.json: while a run from another machine is made again, what the recorded
    run made (its parameters' sha256 where its summary has it, its log's trajectory) and the
    fine-tuning records made from its model. Among a study's records, so that a machine lost in
    the middle leaves it to the next."""
    return Path(f"{run_dir}.recorded.json")


def settle_remade(run_dir: Path) -> None:
    """Once a run made again (`pretraining_finished`) has ended: its model's fine-tuning records
    stay if it is the recorded run's model, and go otherwise (another kind of machine, another
    Paddle, a changed recipe: another model). The same model: the same parameters' sha256, where
    the recorded summary has it (summaries since 2026-12-08); else every logged value equal to
    the last digit (`ernie.pretrain.log.trajectory`: strong evidence, not proof, since parameters
    no logged loss reads are not in it)."""
    recorded = remade_record(run_dir)
    if not recorded.is_file() or not (run_dir / "summary.json").is_file():
        return
    record = json.loads(recorded.read_text(encoding="utf-8"))
    dependents = [p for p in (ROOT / d for d in record["dependents"]) if p.exists()]
    if record.get("params_sha256"):
        same, how = _summary(run_dir).get("params_sha256") == record["params_sha256"], "parameters"
    else:
        same, how = record["trajectory"] is not None and trajectory(read_log(run_dir)) == record["trajectory"], "log"
    if same:
        print(f"{run_dir}: made again, its {how} equal to the recorded run's: the same model, its "
              f"{len(dependents)} fine-tuning records stand", flush=True)
    else:
        for path in dependents:
            shutil.rmtree(path)
        print(f"{run_dir}: made again, its {how} unlike the recorded run's: another model, its "
              f"{len(dependents)} fine-tuning records removed (git keeps them)", flush=True)
    recorded.unlink()


def settle_remakes(run_dirs: Iterable[Path]) -> None:
    """Before a study fine-tunes or probes: each run made again that has ended is settled (one
    killed between its end and its settling, or ended by another command); one whose model is
    there but whose run has not ended (its summary is written last) is an error, since its
    model's old records are not known yet to stand."""
    run_dirs = list(run_dirs)
    for run_dir in run_dirs:
        settle_remade(run_dir)
    for run_dir in run_dirs:
        if remade_record(run_dir).is_file() and model_saved(run_dir / "model"):
            raise SystemExit(f"{run_dir}: a run made again whose model is written but whose run has not ended: let "
                             f"its pre-training end (the study's pretrain) before fine-tuning")


def _committed_unchanged(folder: Path) -> bool:
    """Whether every file in `folder` is tracked by the repository's git and unchanged there."""
    files = [str(p) for p in folder.rglob("*") if p.is_file()]
    if not files:
        return False
    try:
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "--", *files], cwd=ROOT,
                                 capture_output=True).returncode == 0
        clean = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", str(folder)], cwd=ROOT,
                               capture_output=True).returncode == 0
    except OSError:  # no git: nothing here is known to be kept elsewhere
        return False
    return tracked and clean


def job_threads(parallel: int) -> int:
    """Math threads for each of `parallel` runs at once: the user's OMP_NUM_THREADS where it is set
    (the other cores may be another study's: a child taking them would slow both), else the cores
    this process may use, shared among the runs."""
    if ernie.USER_SET_THREADS:
        return math_threads()
    return max(1, usable_cores() // parallel)


def run_python(args: Sequence[str], log: Path, threads: Optional[int] = None) -> None:
    """`python ARGS` in the repository, its output to `log`; `threads`: its OMP_NUM_THREADS (None:
    the user's, or else every core the child may use, as `ernie.kernels.cpu_runtime` chooses).
    Raises subprocess.CalledProcessError when it fails."""
    env = child_environment(**({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as f:
        subprocess.run([sys.executable, *args], check=True, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env)


def run_all(jobs: Iterable[Callable[[], None]], what: str, parallel: int = 2) -> None:
    """Runs each job (a callable that runs commands), `parallel` at once. A job that fails with a
    failed command does not stop the others; the failures are named at the end (SystemExit)."""
    failed: List[str] = []

    def one(job):
        try:
            job()
        except subprocess.CalledProcessError as err:
            failed.append(" ".join(str(a) for a in err.cmd[1:]))

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, list(jobs)))
    if failed:
        raise SystemExit(f"{what}: {len(failed)} run(s) failed: " + "; ".join(failed)
                         + " (each wrote its log beside its output; run again to continue)")
