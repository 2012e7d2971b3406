"""PaddleNLP ERNIE directories (`paddlenlp.transformers.ErnieModel` and its task classes), read and
written without importing PaddleNLP.

A PaddleNLP save is `config.json` (older versions: `model_config.json`), the weights as
`model_state.pdparams` (a pickle written by `paddle.save`) or `model.safetensors`, and the
tokenizer's `vocab.txt`. Its encoder is `paddle.nn.TransformerEncoder` (post-LN, as ERNIE), so
weights keep ERNIE's [in, out] layout and only the names change. Two differences remain:
PaddleNLP's ERNIE sets every layer norm's epsilon to 1e-12 when it builds the model, whatever its
config says (ERNIE's own models use 1e-5), and its tokenizer is WordPiece only. A model read from
PaddleNLP gets epsilon 1e-12, so it computes what PaddleNLP computes; a model written for PaddleNLP
with another epsilon is written with a note (`epsilon_note`): PaddleNLP will compute slightly
other outputs (on a fine-tuned small model, logits up to 6e-3 apart: docs/export.md).

Reading a pickle can run any code it names, so `model_state.pdparams` is read by an unpickler
that admits only what `paddle.save` writes for a state dict: numpy arrays and dtypes, and the
builtin containers (a tensor is pickled as a (name, array) tuple). Anything else is refused.
"""
from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Dict, List, Mapping, Tuple

import numpy as np

from ernie.formats.checkpoint import CheckpointError, load_params
from ernie.formats.hf_format import FINETUNE_HEADS, config_from_hf, config_to_hf, write_wordpiece_tokenizer
from ernie.model import param_names as names
from ernie.model.config import ErnieConfig
from ernie_common.fileio import atomic_directory
from ernie_common.tokenization import is_sentencepiece

CONFIG_FILES = ("config.json", "model_config.json")  # PaddleNLP 2.5+, then the legacy name
PDPARAMS_FILE = "model_state.pdparams"
SAFETENSORS_FILE = "model.safetensors"
LAYER_NORM_EPS = 1e-12  # PaddleNLP's ERNIE sets it in init_weights, ignoring its config
_PREFIX = "ernie."     # PaddleNLP's base_model_prefix: the encoder's names inside a task class
# this project's fine-tuning head -> the PaddleNLP class that carries it as `classifier`
HEAD_CLASSES = {stem: architecture for stem, (architecture, _) in FINETUNE_HEADS.items()}


def _pair(ernie_weight: str, ernie_bias: str, prefix: str) -> List[Tuple[str, str]]:
    return [(ernie_weight, f"{prefix}.weight"), (ernie_bias, f"{prefix}.bias")]


def encoder_name_map(config: ErnieConfig) -> List[Tuple[str, str]]:
    """(ERNIE name, PaddleNLP name without the `ernie.` prefix) for every encoder parameter."""
    rows = [(names.WORD_EMBEDDING, "embeddings.word_embeddings.weight"),
            (names.POS_EMBEDDING, "embeddings.position_embeddings.weight"),
            (names.SENT_EMBEDDING, "embeddings.token_type_embeddings.weight")]
    if config.use_task_id:
        rows.append((names.TASK_EMBEDDING, "embeddings.task_type_embeddings.weight"))
    rows += _pair(names.ln_scale(names.PRE_ENCODER_LAYER_NORM), names.ln_bias(names.PRE_ENCODER_LAYER_NORM),
                  "embeddings.layer_norm")
    for i in range(config.num_hidden_layers):
        layer = f"encoder.layers.{i}"
        for which, proj in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj"), ("output", "out_proj")):
            fc = names.attention_fc(i, which)
            rows += _pair(names.fc_weight(fc), names.fc_bias(fc), f"{layer}.self_attn.{proj}")
        for fc, linear in ((names.ffn_fc(i, 0), "linear1"), (names.ffn_fc(i, 1), "linear2")):
            rows += _pair(names.fc_weight(fc), names.fc_bias(fc), f"{layer}.{linear}")
        for ln, norm in ((names.post_att_layer_norm(i), "norm1"), (names.post_ffn_layer_norm(i), "norm2")):
            rows += _pair(names.ln_scale(ln), names.ln_bias(ln), f"{layer}.{norm}")
    rows += _pair(names.fc_weight(names.POOLED_FC), names.fc_bias(names.POOLED_FC), "pooler.dense")
    return rows


# ---- config ------------------------------------------------------------------------------------

def config_from_paddlenlp(values: Mapping, source: str) -> ErnieConfig:
    if isinstance(values.get("init_args"), list) and values["init_args"] and isinstance(values["init_args"][0], dict):
        values = values["init_args"][0]  # the oldest saves nest the encoder's arguments
    return config_from_hf({**values, "layer_norm_eps": LAYER_NORM_EPS}, source)


def epsilon_note(config: ErnieConfig):
    """What a user should know before serving this model with PaddleNLP, or None."""
    if config.layer_norm_eps == LAYER_NORM_EPS:
        return None
    return (f"the model's layer norms use epsilon {config.layer_norm_eps:g}; PaddleNLP's ERNIE always uses "
            f"{LAYER_NORM_EPS:g}, so its outputs will differ slightly from this library's")


def config_to_paddlenlp(config: ErnieConfig, architecture: str, task_id: int = 0) -> dict:
    values = config_to_hf(config, architecture)
    del values["tie_word_embeddings"]
    values["layer_norm_eps"] = LAYER_NORM_EPS  # what PaddleNLP computes with
    # PaddleNLP's task classes take no task ids: their task embedding reads the config's task_id
    values["task_id"] = task_id
    return values


# ---- weights -----------------------------------------------------------------------------------

class _StateDictUnpickler(pickle.Unpickler):
    """Admits only the globals a `paddle.save`d state dict needs."""
    ALLOWED = {("builtins", "tuple"), ("builtins", "list"), ("builtins", "dict"), ("builtins", "set"),
               ("collections", "OrderedDict"), ("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: not part of a state dict")
        return super().find_class(module, name)


def read_pdparams(path: Path) -> Dict[str, np.ndarray]:
    """{name: array} of a `paddle.save`d state dict, without running code from the file."""
    try:
        state = _StateDictUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise CheckpointError(f"{path}: not a readable PaddleNLP state dict ({err})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a state dict")
    arrays = {}
    for key, value in state.items():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], np.ndarray):
            value = value[1]  # a tensor: (its name, its array)
        if isinstance(value, np.ndarray):
            arrays[key] = value
    return arrays


def read_paddlenlp_dir(path) -> Tuple[ErnieConfig, Dict[str, np.ndarray], List[str]]:
    """(config, ERNIE-named parameters, PaddleNLP names left out) of a PaddleNLP ERNIE save."""
    path = Path(path)
    config_file = next((path / n for n in CONFIG_FILES if (path / n).is_file()), None)
    if config_file is None:
        raise CheckpointError(f"{path}: no {' or '.join(CONFIG_FILES)}: not a PaddleNLP model directory")
    try:
        values = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read {config_file}: {err}") from None
    config = config_from_paddlenlp(values, str(config_file))
    if (path / SAFETENSORS_FILE).is_file():
        state = load_params(path / SAFETENSORS_FILE)
    elif (path / PDPARAMS_FILE).is_file():
        state = read_pdparams(path / PDPARAMS_FILE)
    else:
        raise CheckpointError(f"{path}: no {PDPARAMS_FILE} or {SAFETENSORS_FILE}")
    prefix = _PREFIX if any(k.startswith(_PREFIX) for k in state) else ""
    rows = [(e, prefix + p) for e, p in encoder_name_map(config)]
    architecture = (values.get("architectures") or [values.get("init_class", "")])[0]  # legacy: init_class
    for stem, head_class in HEAD_CLASSES.items():
        if architecture == head_class:
            rows += [(f"{stem}_w", "classifier.weight"), (f"{stem}_b", "classifier.bias")]
    params = {ernie: np.asarray(state[nlp]) for ernie, nlp in rows if nlp in state}
    used = {nlp for _, nlp in rows}
    return config, params, sorted(k for k in state if k not in used)


def write_paddlenlp_dir(path, config: ErnieConfig, params: Mapping[str, np.ndarray], vocab_file=None,
                        do_lower_case: bool = True, labels=(), task_id: int = 0, only_own: bool = False) -> Path:
    """A directory that `paddlenlp.transformers.ErnieModel.from_pretrained` loads (or the task
    class of a fine-tuned head: ErnieForSequenceClassification, ...ForTokenClassification,
    ...ForQuestionAnswering), with `model_state.pdparams` written by `paddle.save`; `only_own` as
    `atomic_directory`'s."""
    import paddle
    if vocab_file is not None and is_sentencepiece(vocab_file):
        raise CheckpointError(f"{vocab_file} is a SentencePiece vocabulary; PaddleNLP's ErnieTokenizer is WordPiece")
    rows, architecture = [(e, p) for e, p in encoder_name_map(config)], "ErnieModel"
    for stem, head_class in HEAD_CLASSES.items():
        if f"{stem}_w" in params:
            rows = [(e, _PREFIX + p) for e, p in rows] + [(f"{stem}_w", "classifier.weight"),
                                                          (f"{stem}_b", "classifier.bias")]
            architecture = head_class
    values = config_to_paddlenlp(config, architecture, task_id)
    if architecture != "ErnieModel":
        n_outputs = int(params[rows[-1][0]].shape[0])
        values.update(num_labels=n_outputs)
        if labels:
            values.update(id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    state = {nlp: np.ascontiguousarray(params[ernie]) for ernie, nlp in rows}
    path = Path(path)
    with atomic_directory(path, only_own) as tmp:
        (tmp / CONFIG_FILES[0]).write_text(json.dumps(values, indent=2) + "\n")
        paddle.save(state, str(tmp / PDPARAMS_FILE))
        if vocab_file is not None:
            write_wordpiece_tokenizer(tmp, vocab_file, "ErnieTokenizer", do_lower_case, config.max_position_embeddings)
    return path
