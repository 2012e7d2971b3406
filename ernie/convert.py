"""Converts model checkpoints between this project's format and others.

    python -m ernie.convert --from {hf,paddlenlp,paddle-static,ernie} --to {ernie,hf,paddlenlp} SRC DST

  hf             a Hugging Face ERNIE or BERT directory (config.json, model.safetensors or
                 pytorch_model.bin, vocab.txt): ErnieModel / ErnieForPreTraining, task-type
                 embeddings included; BertModel, BertForMaskedLM (a fresh pooler, said so),
                 BertForPreTraining; or a sentence-transformers folder (modules.json, the BERT
                 in it or in 0_Transformer/, its pooling recorded in sentence_pooling.json).
                 The pickle is read without running code from it (ernie/formats/bert_format.py)
  paddlenlp      a PaddleNLP ERNIE save (config.json or model_config.json, model_state.pdparams
                 or model.safetensors, vocab.txt): ErnieModel or a task class's encoder and head;
                 the pickle is read without running code from it (ernie/formats/paddlenlp_format.py)
  paddle-static  a released ERNIE static-graph model: ernie_config.json, vocab.txt and params/
                 (one Paddle LoDTensor file per parameter, as save_persistables wrote it)
  ernie          this project's model directory (ernie_config.json, vocab.txt, params.safetensors)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Mapping, NamedTuple, Optional

import numpy as np

from ernie.formats.bert_format import read_hf_checkpoint
from ernie.formats.checkpoint import (
    CASING_FILE,
    CheckpointError,
    casing_files,
    check_vocab_fits,
    decide_casing,
    load_model_dir,
    model_lower_cases,
    save_model_dir,
)
from ernie.formats.hf_format import write_hf_dir
from ernie.formats.paddle_static_format import read_static_model
from ernie.formats.paddlenlp_format import epsilon_note, read_paddlenlp_dir, write_paddlenlp_dir
from ernie.model.config import ConfigError, ErnieConfig
from ernie_common.fileio import OutputDirError, check_output_is_not_input
from ernie_common.tokenization import VocabError


def _vocab_in(src: Path):
    for candidate in (src / "vocab.txt", src.parent / "vocab.txt"):
        if candidate.is_file():
            return candidate
    return None


class Source(NamedTuple):
    config: ErnieConfig
    params: Dict[str, np.ndarray]
    vocab: Optional[Path]
    notes: List[str]                # what was left out or made up, for the user
    extra_files: Dict[str, str]     # {name: text} a converted model directory keeps beside the model
    lower_case: Optional[bool] = None  # the casing of the text it learned from, where it records it


def read_any(kind: str, src: Path) -> Source:
    if kind == "ernie":
        config, params, vocab = load_model_dir(src)
        return Source(config, params, vocab, [], {}, model_lower_cases(src))
    if kind == "hf":
        checkpoint = read_hf_checkpoint(src)
        config, params, ignored, notes = checkpoint.model
        notes = ([f"ignored {len(ignored)} Hugging Face tensor(s) that are not ERNIE encoder or "
                  f"pre-training parameters: {', '.join(ignored[:5])}"] if ignored else []) + notes
        return Source(config, params, _vocab_in(checkpoint.weights_dir), notes, checkpoint.extra_files,
                      model_lower_cases(checkpoint.weights_dir))
    if kind == "paddlenlp":
        config, params, ignored = read_paddlenlp_dir(src)
        notes = [f"ignored {len(ignored)} PaddleNLP tensor(s) that are not ERNIE encoder or fine-tuning head "
                 f"parameters: {', '.join(ignored[:5])}"] if ignored else []
        return Source(config, params, _vocab_in(src), notes, {})
    if kind == "paddle-static":
        config, params, others = read_static_model(src)
        notes = [f"ignored {len(others)} variable file(s) that are not model parameters "
                 f"(optimizer state and the like): {', '.join(others[:5])}"] if others else []
        return Source(config, params, _vocab_in(src), notes, {})
    raise ValueError(f"unknown source format {kind!r}")


def convert(src_kind: str, dst_kind: str, src, dst, do_lower_case: Optional[bool] = None,
            extra_files: Optional[Mapping[str, str]] = None) -> list:
    """Converts SRC to DST; returns notes on what was left out. `extra_files` ({name: text}) go
    into a model directory (--to ernie) with what the source itself brings (a pooling record).
    The casing is the source's record (a model directory keeps it), else `do_lower_case`, else
    lower-cased; `do_lower_case` against the record is refused."""
    src, dst = Path(src), Path(dst)
    check_output_is_not_input(dst, src)
    config, params, vocab, notes, extras, recorded = read_any(src_kind, src)
    lower = decide_casing(recorded, do_lower_case, src, "leave out --cased")
    extras = {**extras, **casing_files(recorded if do_lower_case is None else do_lower_case), **(extra_files or {})}
    if vocab is not None:
        check_vocab_fits(vocab, config)
    else:
        notes.append(f"no vocab.txt found with {src}; {dst} has none either")
    left = sorted(set(extras) - {CASING_FILE})  # the other formats keep the casing in their tokenizer files
    if left and dst_kind != "ernie":
        notes.append(f"{', '.join(left)} not written: only a model directory (--to ernie) keeps them")
    if dst_kind == "ernie":
        save_model_dir(dst, config, params, vocab_file=vocab, extra_files=extras, only_own=True)
    elif dst_kind == "hf":
        write_hf_dir(dst, config, params, vocab_file=vocab, do_lower_case=lower, only_own=True)
    elif dst_kind == "paddlenlp":
        write_paddlenlp_dir(dst, config, params, vocab_file=vocab, do_lower_case=lower, only_own=True)
        notes += [note for note in [epsilon_note(config)] if note]
    else:
        raise ValueError(f"unknown target format {dst_kind!r}")
    return notes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ernie.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="src_kind", required=True, choices=["hf", "paddlenlp", "paddle-static", "ernie"])
    parser.add_argument("--to", dest="dst_kind", required=True, choices=["ernie", "hf", "paddlenlp"])
    parser.add_argument("--cased", action="store_true",
                        help="the model learned from cased text, where the source does not record it (default: "
                             "the source's record, else uncased)")
    parser.add_argument("src", help="source directory")
    parser.add_argument("dst", help="target directory, new or empty (an earlier output of the same kind is replaced "
                        "atomically; a directory holding other files is refused)")
    args = parser.parse_args(argv)
    try:
        notes = convert(args.src_kind, args.dst_kind, args.src, args.dst,
                        do_lower_case=False if args.cased else None)
    except (CheckpointError, ConfigError, VocabError, OutputDirError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
