"""Pre-training batches with and without length pools (`length_pool` in a pre-training config,
`ernie.pretrain.data`): real tokens a batch holds, the share of its padded positions they fill,
and batches/s of the reader (masking and padding included), for knowledge-masking batches of the
plain segments. The shards are those a recipe wrote, e.g. `bash run_pretrain.sh` (output/demo/shards)
or the Chinese recipe (output/small_zh/shards). Prints figures; asserts nothing.

    python benchmarks/bench_batching.py output/demo/shards [output/small_zh/shards ...] \
        [--batch-tokens 4096] [--batches 400] [--pools 1 8 32 100]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ernie.pretrain.data import batch_fill


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shards", nargs="+", type=Path, help="shard directories (data_gen make)")
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--pools", type=int, nargs="+", default=[1, 8, 32, 100])
    args = parser.parse_args()
    for shards in args.shards:
        print(f"{shards} (batches of {args.batch_tokens} tokens, {args.batches} of them)")
        base = None
        for pool in args.pools:
            m = batch_fill(shards, args.batch_tokens, args.batches, pool)
            base = base or m["real"]
            print(f"  length_pool {pool:4d}: {m['real']:7.0f} real tokens a batch ({m['real'] / base:.2f}x), "
                  f"{m['fill']:6.1%} of padded positions, reader {args.batches / m['seconds']:6.1f} batches/s")


if __name__ == "__main__":
    main()
