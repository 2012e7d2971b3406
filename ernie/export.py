"""`python -m ernie.export --model DIR --format {paddle-inference,onnx,hf,paddlenlp,hub} --output DIR`

- paddle-inference: `inference.json` + `inference.pdiparams` (feeds src_ids, sent_ids, pos_ids,
  input_mask and, when the model has a task embedding, task_ids; named outputs: `logits` and
  `probs` for classification and sequence labelling, `score` for regression, `start_logits` and
  `end_logits` for reading comprehension, `sequence_output` and `pooled_output` for a pre-trained
  encoder), with the model directory's `ernie_config.json`, `vocab.txt` and `finetune.json`
  (and a SentencePiece vocabulary's model), `signature.json` (each input's and output's name,
  dtype and shape) and `checksums.json` (the SHA-256 of the graph, the parameters and the side
  files, which `ernie.predict` checks: Paddle Inference loads a truncated .pdiparams silently, and
  a vocab.txt or finetune.json replaced by another would give wrong answers without a word);
  `paddle.inference` and `ernie.predict` run it.
- onnx: `model.onnx` converted from that by paddle2onnx (opset 13, no optimiser that would need
  the network), with the same inputs, outputs and side files.
- hf: a Hugging Face directory that `transformers` loads (`ErnieModel`, or the `ErnieFor...`
  class of a fine-tuned head).
- paddlenlp: a PaddleNLP directory that `paddlenlp.transformers` loads (`ErnieModel`, or the
  `ErnieFor...` class of a fine-tuned head, with its labels).
- hub: a PaddleHub module folder of a sentence-level model: the inference model, its side files
  and `module.py`, which needs paddlepaddle and paddlehub but not this project
  (ernie/serving/hub_module.py):
      import paddlehub as hub
      module = hub.Module(directory="OUTPUT")
      module.predict(["first text", "second text"])
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from ernie.finetune import FINETUNE_FILE
from ernie.finetune.description import read_description
from ernie.finetune.heads import HEAD_PARAMS
from ernie.formats.checkpoint import VOCAB_FILE_NAME, CheckpointError, load_model_dir, model_lower_cases
from ernie.formats.hf_format import write_hf_dir
from ernie.formats.paddlenlp_format import epsilon_note, write_paddlenlp_dir
from ernie.model.config import CONFIG_FILE_NAME, ErnieConfig
from ernie.serving.inference_model import inference_program
from ernie_common.fileio import OutputDirError, atomic_directory, check_output_is_not_input, sha256_file
from ernie_common.tokenization import TOKENIZER_FILES, is_sentencepiece
from propeller.device import DeviceError

FORMATS = ("paddle-inference", "onnx", "hf", "paddlenlp", "hub")
INFERENCE_PREFIX = "inference"
CHECKSUMS_FILE = "checksums.json"
SIGNATURE_FILE = "signature.json"
ONNX_FILE = "model.onnx"


def _side_files(model_dir: Path, out: Path) -> list:
    """Copies the files the consumers of an export read beside the graph (a SentencePiece
    vocabulary is tokenized by its model, so that travels too); returns their names."""
    names = [name for name in (CONFIG_FILE_NAME, VOCAB_FILE_NAME, *TOKENIZER_FILES, FINETUNE_FILE)
             if (model_dir / name).is_file()]
    for name in names:
        shutil.copyfile(model_dir / name, out / name)
    return names


def export_inference(model_dir: Path, out: Path) -> None:
    program = inference_program(model_dir)
    program.save_inference_model(out / INFERENCE_PREFIX)
    side_files = _side_files(model_dir, out)
    (out / SIGNATURE_FILE).write_text(json.dumps(program.signature(), indent=1) + "\n")
    # Paddle Inference loads a truncated .pdiparams without a word, and another vocab.txt of the
    # same size gives other answers: the predictor checks these
    files = [f"{INFERENCE_PREFIX}.json", f"{INFERENCE_PREFIX}.pdiparams", *side_files]
    (out / CHECKSUMS_FILE).write_text(json.dumps({f: sha256_file(out / f) for f in files}, indent=1) + "\n")


def verify_checksums(directory: Path) -> None:
    """Checks an exported model's files against the SHA-256 the export recorded (exports made
    before it recorded them are not checked)."""
    path = directory / CHECKSUMS_FILE
    if not path.is_file():
        return
    for name, digest in json.loads(path.read_text(encoding="utf-8")).items():
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory / name} is missing: export the model again")
        if sha256_file(directory / name) != digest:
            raise CheckpointError(f"{directory / name} is not the file the export wrote (truncated, corrupt or "
                                  f"replaced: its SHA-256 differs): export the model again")


def export_onnx(model_dir: Path, out: Path) -> None:
    import paddle2onnx
    with tempfile.TemporaryDirectory() as tmp:
        export_inference(model_dir, Path(tmp))
        # polygraphy, the default optimiser, pip-installs itself at export time.
        paddle2onnx.export(f"{tmp}/{INFERENCE_PREFIX}.json", f"{tmp}/{INFERENCE_PREFIX}.pdiparams",
                           str(out / ONNX_FILE), opset_version=13, enable_onnx_checker=True,
                           optimize_tool="None")
        shutil.copyfile(Path(tmp) / SIGNATURE_FILE, out / SIGNATURE_FILE)
    _side_files(model_dir, out)


def export_library_dir(model_dir: Path, out: Path, fmt: str) -> None:
    """A Hugging Face or PaddleNLP directory (their writers write atomically themselves), with a
    fine-tuned model's labels (and, for PaddleNLP, whose task classes take no task ids, its task id)."""
    config, params, vocab = load_model_dir(model_dir)
    description = read_description(model_dir)
    if description is not None and description.pooling not in (None, "cls"):
        library = "Hugging Face" if fmt == "hf" else "PaddleNLP"
        raise CheckpointError(f"{model_dir}: its head classifies the {description.pooling}-pooled top layer; "
                              f"{library}'s ErnieForSequenceClassification classifies the pooled [CLS] output, so "
                              f"it would load the weights and compute something else: export paddle-inference, "
                              f"onnx or hub instead")
    # a pre-trained model's casing as its directory records it (pre-training and conversion do)
    lower = model_lower_cases(model_dir)
    do_lower_case, labels, task_id = (lower is not False, (), 0) if description is None else \
        (description.do_lower_case, description.labels, description.task_id)
    common = dict(do_lower_case=do_lower_case, labels=labels)
    if fmt == "hf":
        write_hf_dir(out, config, params, vocab, only_own=True, **common)
    else:
        write_paddlenlp_dir(out, config, params, vocab, task_id=task_id, only_own=True, **common)


def export_hub(model_dir: Path, out: Path) -> None:
    import re

    from ernie.finetune.tasks import get_task
    from ernie.serving.hub_module import module_source
    description = read_description(model_dir)
    if description is None:
        raise CheckpointError(f"{model_dir}: a hub module needs a fine-tuned model (no {FINETUNE_FILE})")
    task = get_task(description.task)
    if description.head != "sentence":
        raise CheckpointError(f"{model_dir}: the hub module serves sentence-level heads; a {task.kind} model is "
                              f"served with --format paddle-inference and `python -m ernie.predict`")
    vocab = model_dir / VOCAB_FILE_NAME
    if is_sentencepiece(vocab):
        raise CheckpointError(f"{vocab} is a SentencePiece vocabulary; the hub module tokenizes with PaddleNLP's "
                              f"WordPiece ErnieTokenizer")
    export_inference(model_dir, out)
    name = "ernie_" + re.sub(r"[^0-9a-z]+", "_", task.name.lower()).strip("_")
    source = module_source(name, f"ERNIE 2.0 fine-tuned on {task.name}", task.kind,
                           paired=task.takes_pairs)
    (out / "module.py").write_text(source, encoding="utf-8")


def export(model_dir, fmt: str, output) -> Path:
    model_dir, output = Path(model_dir), Path(output)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")
    check_output_is_not_input(output, model_dir)
    _, params, vocab = load_model_dir(model_dir)  # a clear error for a broken model before anything is written
    if fmt not in ("hf", "paddlenlp"):  # (the libraries' directories keep a head and go without a vocabulary)
        if vocab is None:  # predict and the hub module read text with it
            raise CheckpointError(f"{model_dir} has no {VOCAB_FILE_NAME}: a {fmt} export reads text with it (a "
                                  f"pre-training checkpoint's folder has none: export the run's model/ directory)")
        heads = [name for name, (weight, _) in HEAD_PARAMS.items() if weight in params]
        if heads and read_description(model_dir) is None:  # it would be exported as the encoder alone
            raise CheckpointError(f"{model_dir} holds a fine-tuned {heads[0]} head ({HEAD_PARAMS[heads[0]][0]}) but "
                                  f"no {FINETUNE_FILE}, which says what it predicts: a {fmt} export would drop the head")
    if fmt in ("hf", "paddlenlp"):
        export_library_dir(model_dir, output, fmt)
        return output
    with atomic_directory(output, only_own=True) as tmp:
        {"paddle-inference": export_inference, "onnx": export_onnx, "hub": export_hub}[fmt](model_dir, tmp)
    return output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ernie.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model directory (pre-trained or fine-tuned)")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--output", required=True, help="a new or empty directory, or an earlier export of this "
                        "format (replaced); a directory holding other files is refused")
    args = parser.parse_args(argv)
    try:
        out = export(args.model, args.format, args.output)
    except (CheckpointError, ValueError, OutputDirError, DeviceError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.format == "paddlenlp":
        note = epsilon_note(ErnieConfig.from_file(Path(args.model) / CONFIG_FILE_NAME))
        if note:
            print(f"note: {note}", file=sys.stderr)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
