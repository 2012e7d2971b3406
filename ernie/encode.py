"""Encodes text with a model directory, like the original `ernie_encoder.py`.

    python -m ernie.encode --model DIR --input FILE --output DIR [--task-id N] [--max-seq-len N]

Each input line is `text_a` or `text_a<TAB>text_b`. Writes `cls_emb.npy` [N, H] (the pooled
output: tanh fc over the top layer's [CLS], as the original) and `top_layer_emb.npy` [N, max_seq_len, H] (zeros
past each line's length), written as it goes and renamed into place when complete.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from ernie.formats.checkpoint import CASING_FILE, CheckpointError, decide_casing, load_model_dir, model_lower_cases
from ernie.model.config import ConfigError
from ernie.model.features import pack_pair, pad_batch, pair_is_cut
from ernie_common.cli import input_file, output_dir, positive_int
from ernie_common.fileio import atomic_path
from ernie_common.tokenization import CharTokenizer, VocabError, make_tokenizer
from propeller.device import DeviceError


class InputError(ValueError):
    """An input line that is not `text_a` or `text_a<TAB>text_b`."""


def read_text_pairs(path: Path) -> List[Tuple[str, Optional[str]]]:
    pairs = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise InputError(f"{path}:{lineno}: not UTF-8 (byte {err.start})") from None
            fields = line.split("\t")
            if len(fields) > 2:
                raise InputError(f"{path}:{lineno}: expected text_a or text_a<TAB>text_b, "
                                 f"found {len(fields)} tab-separated fields")
            if not fields[0].strip():
                raise InputError(f"{path}:{lineno}: text_a is empty")
            pairs.append((fields[0], fields[1] if len(fields) == 2 else None))
    return pairs


def batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def encode_file(model_dir, input_file, output_dir, task_id: int = 0, max_seq_len: int = 128,
                batch_size: int = 32, tokenizer: str = "full", do_lower_case: Optional[bool] = None) -> Tuple[int, int]:
    """Writes the two arrays; returns (lines encoded, lines cut to `max_seq_len` tokens). The text
    is lower-cased as `decide_casing` decides with the model's record."""
    # Paddle is imported here so that `--help` and input errors answer at once.
    from ernie.model.static_graph import StaticEncoder

    pairs = read_text_pairs(Path(input_file))
    config, params, vocab = load_model_dir(model_dir)
    if vocab is None:
        raise CheckpointError(f"{model_dir} has no vocab.txt to tokenize with")
    if max_seq_len < 3:
        raise ConfigError(f"--max-seq-len {max_seq_len} leaves no room for a token between [CLS] and [SEP]: "
                          f"give 3 or more")
    problem = config.input_problem(max_seq_len, task_id)
    if problem:
        raise ConfigError(problem)
    lower = decide_casing(model_lower_cases(model_dir), do_lower_case, Path(model_dir) / CASING_FILE, "leave out --cased")
    tok = CharTokenizer(vocab) if tokenizer == "char" else make_tokenizer(vocab, lower)
    encoder = StaticEncoder(config, params)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    n, h = len(pairs), config.hidden_size
    with atomic_path(output_dir / "cls_emb.npy") as cls_tmp, \
            atomic_path(output_dir / "top_layer_emb.npy") as top_tmp:
        cls_out = np.lib.format.open_memmap(cls_tmp, mode="w+", dtype=np.float32, shape=(n, h))
        top_out = np.lib.format.open_memmap(top_tmp, mode="w+", dtype=np.float32,
                                            shape=(n, max_seq_len, h))
        row = truncated = 0
        with tqdm(total=n, unit="line", desc="encode", disable=None) as bar:
            for chunk in batches(pairs, batch_size):
                ids = [(tok.encode(a), tok.encode(b) if b is not None else None) for a, b in chunk]
                truncated += sum(pair_is_cut(a, b, max_seq_len) for a, b in ids)
                examples = [pack_pair(a, b, max_seq_len, tok.cls_id, tok.sep_id) for a, b in ids]
                feeds = pad_batch(examples, tok.pad_id, task_id)
                seq, pooled = encoder.run(feeds)
                seq = seq * feeds["input_mask"][:, :, None]
                cls_out[row:row + len(chunk)] = pooled
                top_out[row:row + len(chunk), :seq.shape[1]] = seq
                row += len(chunk)
                bar.update(len(chunk))
        cls_out.flush()
        top_out.flush()
        del cls_out, top_out
    return n, truncated


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ernie.encode", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model directory (ernie_config.json, vocab.txt, params)")
    parser.add_argument("--input", required=True, type=input_file, help="UTF-8 file: text_a or text_a<TAB>text_b a line")
    parser.add_argument("--output", required=True, type=output_dir, help="directory for cls_emb.npy and top_layer_emb.npy")
    parser.add_argument("--task-id", type=int, default=0, help="task embedding id (default 0)")
    parser.add_argument("--max-seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--tokenizer", choices=["full", "char"], default="full",
                        help="full: BERT WordPiece (default); char: pre-segmented Chinese")
    parser.add_argument("--cased", action="store_true", help="do not lower-case (full tokenizer), where the model "
                        "does not record its casing (default: its record, else lower-cased)")
    args = parser.parse_args(argv)
    try:
        n, truncated = encode_file(args.model, args.input, args.output, args.task_id, args.max_seq_len,
                                   args.batch_size, args.tokenizer, False if args.cased else None)
    except (InputError, CheckpointError, ConfigError, VocabError, DeviceError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"encoded {n} lines into {args.output}/cls_emb.npy and top_layer_emb.npy"
          + (f"; {truncated} of them longer than {args.max_seq_len} tokens, cut to it" if truncated else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
