"""`python -m data_gen {fetch,build-vocab} ...`: the data generation command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .corpora import CORPORA
from .registry import FetchError
from .vocab import build_vocab


def _fetch(args) -> int:
    corpus = CORPORA[args.name]
    out_dir = Path(args.dir) / args.name
    path = corpus.write(out_dir)
    print(f"{args.name}: {corpus.description}\nwrote {path}")
    return 0


def _build_vocab(args) -> int:
    inputs = [Path(p) for p in args.input]
    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        print(f"error: input file(s) not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    n = build_vocab(inputs, Path(args.output), args.size, args.lang,
                    do_lower_case=not args.cased, min_frequency=args.min_frequency)
    print(f"wrote {args.output}: {n} tokens")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_gen", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    fetch = sub.add_parser("fetch", help="fetch a registry corpus and convert it")
    fetch.add_argument("name", choices=sorted(CORPORA))
    fetch.add_argument("--dir", default="data", help="output directory (default: data)")
    fetch.set_defaults(run=_fetch)

    vocab = sub.add_parser("build-vocab", help="train a WordPiece vocabulary in ERNIE's format")
    vocab.add_argument("--input", nargs="+", required=True, help="UTF-8 text files")
    vocab.add_argument("--size", type=int, required=True, help="vocabulary size, special tokens included")
    vocab.add_argument("--lang", choices=["en", "zh", "mixed"], required=True)
    vocab.add_argument("--output", required=True, help="vocab.txt to write")
    vocab.add_argument("--cased", action="store_true", help="keep case (default: lower-case)")
    vocab.add_argument("--min-frequency", type=int, default=2)
    vocab.set_defaults(run=_build_vocab)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except FetchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
