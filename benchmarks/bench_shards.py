"""Reading shards: examples/s with the block checksums (`data_gen.shards`) against the same reads
unchecked, over the demo corpus's shards (made here with the demo's data config). The first pass
over a shard checks each block once (CRC-32); later passes only look the blocks up. Prints
figures; asserts nothing.

    python benchmarks/bench_shards.py [--passes 3]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from data_gen.config import DataConfig
from data_gen.make import make
from data_gen.shards import Shard
from data_gen.vocab import build_vocab

REPO = Path(__file__).resolve().parent.parent


class UncheckedShard(Shard):
    """The same reader without the checks (the header's and the offsets' still run at open)."""

    def _check_example(self, i: int, t0: int, t1: int, m0: int, m1: int) -> None:
        pass


def epochs(paths, kind, n: int):
    """Seconds of each of `n` reads of every example, in a random order (as training reads),
    through one set of readers; and the number of examples."""
    import numpy as np
    shards = [kind(p) for p in paths]
    order = [(s, i) for s, shard in enumerate(shards) for i in range(len(shard))]
    np.random.default_rng(0).shuffle(order)
    seconds = []
    for _ in range(n):
        start = time.perf_counter()
        for s, i in order:
            shards[s][i]
        seconds.append(time.perf_counter() - start)
    return seconds, len(order)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passes", type=int, default=3, help="epochs over the shards")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        values = yaml.safe_load((REPO / "configs/data/demo_en.yaml").read_text())
        vocab = Path(tmp) / "vocab.txt"
        build_vocab([REPO / values["input"]], vocab, 8000, "en")
        # the config's `configs/...` resources are found among the shipped configs from any directory
        values.update(input=str(REPO / values["input"]), vocab=str(vocab), output=str(Path(tmp) / "shards"), workers=1)
        config = DataConfig(**values)
        make(config, progress=False)
        paths = sorted((Path(tmp) / "shards").glob("part-*.shard"))
        size = sum(p.stat().st_size for p in paths) / 1e6
        print(f"{len(paths)} shards, {size:.1f} MB")
        plain, n = epochs(paths, UncheckedShard, args.passes)
        checked, _ = epochs(paths, Shard, args.passes)
        for epoch, (a, b) in enumerate(zip(plain, checked), 1):
            note = "every block checked once" if epoch == 1 else "blocks already checked"
            print(f"epoch {epoch} ({note}): unchecked {n / a:8.0f} examples/s, checked {n / b:8.0f} examples/s, "
                  f"cost {b / a - 1:+.1%}")


if __name__ == "__main__":
    main()
