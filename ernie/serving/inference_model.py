"""The forward program of a model directory, for export: a pre-trained encoder gives
`sequence_output` and `pooled_output`; a fine-tuned model (with `finetune.json`) gives its task
kind's outputs (class probabilities, a regression score, per-token tag probabilities, or start
and end logits)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ernie.finetune import FINETUNE_FILE
from ernie.formats.checkpoint import CheckpointError, load_model_dir
from ernie.model.modeling import ErnieModel
from ernie.model.params_io import assign_scope_params
from ernie.model.static_graph import encoder_feeds
from ernie_common.tokenization import make_tokenizer
from propeller.static_runner import InferenceProgram


def read_description(model_dir) -> Optional[dict]:
    path = Path(model_dir) / FINETUNE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not JSON ({err})") from None


def task_kind(description: dict, vocab_file):
    """The fine-tuning kind object a description names (for its outputs and decoding)."""
    from ernie.finetune.tasks import KINDS, get_task
    task = get_task(description["task"])
    tokenizer = make_tokenizer(vocab_file, description["do_lower_case"])
    options = {"pooling": description["pooling"]} if "pooling" in description else {}
    return KINDS[task.kind](task, tokenizer, description["max_seq_len"], description["labels"], **options)


def inference_program(model_dir) -> InferenceProgram:
    config, params, vocab = load_model_dir(model_dir)
    description = read_description(model_dir)
    layers = {}

    def model_fn():
        if description is None:
            feeds = encoder_feeds(config)
            layers["model"] = model = ErnieModel(config)
            model.eval()
            sequence_output, pooled_output = model(**feeds)
            return feeds, {"sequence_output": sequence_output, "pooled_output": pooled_output}
        from ernie.finetune.heads import inference_graph
        layers["model"], feeds, outputs = inference_graph(config, task_kind(description, vocab))
        return feeds, outputs

    program = InferenceProgram(model_fn)
    assign_scope_params([p.name for p in layers["model"].parameters()], params, program.place, program.scope)
    return program
