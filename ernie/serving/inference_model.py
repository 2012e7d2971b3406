"""The forward program of a model directory, for export: a pre-trained encoder gives
`sequence_output` and `pooled_output`; a fine-tuned model (with `finetune.json`) gives its task
kind's outputs (class probabilities, a regression score, per-token tag probabilities, or start
and end logits)."""
from __future__ import annotations

from ernie.finetune.description import Description, read_description
from ernie.formats.checkpoint import CheckpointError, load_model_dir
from ernie.model.modeling import ErnieModel
from ernie.model.params_io import assign_scope_params
from ernie.model.static_graph import encoder_feeds
from ernie_common.tokenization import make_tokenizer
from propeller.static_runner import InferenceProgram


def task_kind(description: Description, vocab_file):
    """The fine-tuning kind object a description names (for its outputs and decoding)."""
    from ernie.finetune.tasks import KINDS, get_task
    task = get_task(description.task)
    tokenizer = make_tokenizer(vocab_file, description.do_lower_case)
    options = {"pooling": description.pooling} if description.pooling is not None else {}
    return KINDS[task.kind](task, tokenizer, description.max_seq_len, description.labels, **options)


def inference_program(model_dir) -> InferenceProgram:
    config, params, vocab = load_model_dir(model_dir)
    description = read_description(model_dir)
    if description is not None and vocab is None:
        raise CheckpointError(f"{model_dir} has no vocab.txt: a fine-tuned model's export is served with the "
                              f"vocabulary it was trained with")
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
