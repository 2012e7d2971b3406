"""Hugging Face `ErnieModel` / `ErnieForPreTraining` directories, read and written without torch;
BERT's (`BertModel`, `BertForMaskedLM`, `BertForPreTraining`) are read too.

BERT is ERNIE's architecture without the task embedding, and Hugging Face names both alike: one
name map serves both, only the prefix a task class puts before the encoder differs (`ernie.`,
`bert.`). HF stores linear weights [out, in]; ERNIE stores them [in, out], so those are
transposed. The masked-LM decoder weight is tied to the word embedding in both and is not stored
twice. Torch pickles (`pytorch_model.bin`) and sentence-transformers folders are `bert_format`'s.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ernie.formats.checkpoint import CASING_FILE, CheckpointError, load_params, model_lower_cases, save_params
from ernie.model import param_names as names
from ernie.model.config import ErnieConfig
from ernie_common.fileio import atomic_directory
from ernie_common.tokenization import CLS, MASK, PAD, SEP, UNK, SentencePieceTokenizer, is_sentencepiece, load_vocab

HF_CONFIG_FILE = "config.json"
HF_WEIGHTS_FILE = "model.safetensors"
# model_type -> the prefix its task classes (...ForPreTraining, ...ForMaskedLM) put before the encoder's names
ENCODER_PREFIXES = {"ernie": "ernie.", "bert": "bert."}
_ENCODER_PREFIX = ENCODER_PREFIXES["ernie"]  # what this module writes

# ERNIE config field -> HF config key (the rest share their names).
_CONFIG_RENAMES = {"sent_type_vocab_size": "type_vocab_size"}
# What transformers' BertConfig and ErnieConfig take for keys a config.json leaves out (transformers
# writes them all; a hand-written config may not), where the ERNIE config's own defaults differ.
_HF_DEFAULTS = {"vocab_size": 30522, "intermediate_size": 3072, "type_vocab_size": 2,
                "layer_norm_eps": 1e-12}
# HF keys that are not parameters, or are tied copies of one.
_IGNORED_HF_KEYS = ("embeddings.position_ids", "cls.predictions.decoder.weight",
                    "cls.predictions.decoder.bias")


def _fc(ernie_prefix: str, hf_prefix: str) -> List[Tuple[str, str, bool]]:
    return [(names.fc_weight(ernie_prefix), f"{hf_prefix}.weight", True),
            (names.fc_bias(ernie_prefix), f"{hf_prefix}.bias", False)]


def _ln(ernie_prefix: str, hf_prefix: str) -> List[Tuple[str, str, bool]]:
    return [(names.ln_scale(ernie_prefix), f"{hf_prefix}.weight", False),
            (names.ln_bias(ernie_prefix), f"{hf_prefix}.bias", False)]


def encoder_name_map(config: ErnieConfig) -> List[Tuple[str, str, bool]]:
    """(ERNIE name, HF name without the model prefix, transpose?) for every encoder parameter."""
    rows = [(names.WORD_EMBEDDING, "embeddings.word_embeddings.weight", False),
            (names.POS_EMBEDDING, "embeddings.position_embeddings.weight", False),
            (names.SENT_EMBEDDING, "embeddings.token_type_embeddings.weight", False)]
    if config.use_task_id:
        rows.append((names.TASK_EMBEDDING, "embeddings.task_type_embeddings.weight", False))
    rows += _ln(names.PRE_ENCODER_LAYER_NORM, "embeddings.LayerNorm")
    for i in range(config.num_hidden_layers):
        hf = f"encoder.layer.{i}"
        for which in ("query", "key", "value"):
            rows += _fc(names.attention_fc(i, which), f"{hf}.attention.self.{which}")
        rows += _fc(names.attention_fc(i, "output"), f"{hf}.attention.output.dense")
        rows += _ln(names.post_att_layer_norm(i), f"{hf}.attention.output.LayerNorm")
        rows += _fc(names.ffn_fc(i, 0), f"{hf}.intermediate.dense")
        rows += _fc(names.ffn_fc(i, 1), f"{hf}.output.dense")
        rows += _ln(names.post_ffn_layer_norm(i), f"{hf}.output.LayerNorm")
    rows += _fc(names.POOLED_FC, "pooler.dense")
    return rows


def head_name_map() -> List[Tuple[str, str, bool]]:
    """The pre-training heads of `ErnieForPreTraining` (stored without the model prefix)."""
    return (_fc(names.MASK_LM_TRANS_FC, "cls.predictions.transform.dense")
            + _ln(names.MASK_LM_TRANS_LAYER_NORM, "cls.predictions.transform.LayerNorm")
            + [(names.MASK_LM_OUT_BIAS, "cls.predictions.bias", False)]
            + _fc(names.NEXT_SENT_FC, "cls.seq_relationship"))


# The fine-tuning heads (`ernie.finetune.heads`) and the HF classes that carry the same layer.
FINETUNE_HEADS = {"cls_out": ("ErnieForSequenceClassification", "classifier"),
                  "cls_seq_label_out": ("ErnieForTokenClassification", "classifier"),
                  "cls_mrc_out": ("ErnieForQuestionAnswering", "qa_outputs")}


def finetune_head_rows(stem: str) -> List[Tuple[str, str, bool]]:
    hf = FINETUNE_HEADS[stem][1]
    return [(f"{stem}_w", f"{hf}.weight", True), (f"{stem}_b", f"{hf}.bias", False)]


# ---- config ------------------------------------------------------------------------------------

def config_from_hf(values: Mapping, source: str = HF_CONFIG_FILE) -> ErnieConfig:
    """The ERNIE config of a Hugging Face ERNIE or BERT config (PaddleNLP's uses the same keys)."""
    if values.get("model_type") not in (None, *ENCODER_PREFIXES):
        raise CheckpointError(f"{source} has model_type {values.get('model_type')!r}, expected one of "
                              f"{', '.join(map(repr, ENCODER_PREFIXES))}")
    if values.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(f"{source} has position_embedding_type {values['position_embedding_type']!r}; "
                              "ERNIE's are 'absolute'")
    values = {**_HF_DEFAULTS, **values}
    ernie = {}
    for field in ErnieConfig.__dataclass_fields__:
        key = _CONFIG_RENAMES.get(field, field)
        if key in values and values[key] is not None:
            ernie[field] = values[key]
    return ErnieConfig.from_dict(ernie, source=source)


def config_to_hf(config: ErnieConfig, architecture: str) -> dict:
    values = {_CONFIG_RENAMES.get(k, k): v for k, v in config.to_dict().items()}
    values.update(model_type="ernie", architectures=[architecture], tie_word_embeddings=True)
    return values


# ---- parameters --------------------------------------------------------------------------------

def _normalise_hf_key(key: str) -> str:
    # Checkpoints from older BERT-style code name layer-norm parameters gamma/beta.
    return key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")


def _encoder_prefix(state: Mapping[str, np.ndarray]) -> str:
    """`ernie.` or `bert.` where a task class saved the encoder under its base model's name, else ''."""
    return next((p for p in ENCODER_PREFIXES.values() if any(k.startswith(p) for k in state)), "")


def params_from_hf(config: ErnieConfig, state: Mapping[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], List[str]]:
    """ERNIE-named arrays from an HF state dict; also returns the HF keys that were not used."""
    state = {_normalise_hf_key(k): v for k, v in state.items()}
    prefix = _encoder_prefix(state)
    rows = [(e, prefix + h, t) for e, h, t in encoder_name_map(config)] + head_name_map()
    rows += [row for stem in FINETUNE_HEADS for row in finetune_head_rows(stem)]
    params, used = {}, set()
    for ernie_name, hf_name, transpose in rows:
        if hf_name not in state:
            continue
        value = np.asarray(state[hf_name])
        params[ernie_name] = np.ascontiguousarray(value.T) if transpose else value
        used.add(hf_name)
    ignored = sorted(k for k in state if k not in used
                     and not any(k.endswith(i) for i in _IGNORED_HF_KEYS))
    return params, ignored


def params_to_hf(config: ErnieConfig, params: Mapping[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], str]:
    """HF-named arrays, and the architecture: ErnieForPreTraining when the pre-training heads are
    present, the matching ErnieFor... class when a fine-tuning head is, else ErnieModel."""
    for stem, (architecture, _) in FINETUNE_HEADS.items():
        if f"{stem}_w" in params:
            rows = [(e, _ENCODER_PREFIX + h, t) for e, h, t in encoder_name_map(config)] + finetune_head_rows(stem)
            return {hf: np.ascontiguousarray(params[e].T) if t else params[e] for e, hf, t in rows}, architecture
    heads = head_name_map()
    with_heads = all(e in params for e, _, _ in heads)
    prefix = _ENCODER_PREFIX if with_heads else ""
    rows = [(e, prefix + h, t) for e, h, t in encoder_name_map(config)] + (heads if with_heads else [])
    state = {hf: np.ascontiguousarray(params[e].T) if t else params[e] for e, hf, t in rows}
    return state, "ErnieForPreTraining" if with_heads else "ErnieModel"


def fresh_pooler(config: ErnieConfig, seed: int = 0) -> Dict[str, np.ndarray]:
    """A pooler for a checkpoint saved without one (a masked-LM model's), initialised as the encoder
    initialises its own (truncated normal of std `initializer_range` cut at two deviations, zero
    bias) and the same for the same seed, so that a conversion is reproducible."""
    rng = np.random.default_rng(seed)
    shape = (config.hidden_size, config.hidden_size)
    weight = rng.standard_normal(shape)
    while (outside := np.abs(weight) > 2).any():
        weight[outside] = rng.standard_normal(int(outside.sum()))
    return {names.fc_weight(names.POOLED_FC): (weight * config.initializer_range).astype(np.float32),
            names.fc_bias(names.POOLED_FC): np.zeros(config.hidden_size, np.float32)}


# ---- directories -------------------------------------------------------------------------------

class HfModel(NamedTuple):
    config: ErnieConfig
    params: Dict[str, np.ndarray]
    ignored: List[str]  # HF tensors that are no ERNIE parameter
    notes: List[str]    # what a user should know about the conversion


def read_json(path: Path):
    """What a JSON file holds; where it cannot be read, a checkpoint error naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read {path}: {err}") from None


def _casing_notes(path: Path) -> List[str]:
    """This library's tokenizers lower-case unless told not to; a cased model needs telling."""
    if model_lower_cases(path) is False:
        return [f"{path / CASING_FILE} says the model is cased: set do_lower_case: false where its "
                "text is tokenized (pre-training from it refuses shards made lower-cased)"]
    return []


def read_hf_dir(path, state: Optional[Mapping[str, np.ndarray]] = None) -> HfModel:
    """An HF ERNIE or BERT directory: `config.json` and the weights of `model.safetensors`, or
    `state` where the caller read them from another file (`bert_format`: `pytorch_model.bin`)."""
    path = Path(path)
    if state is None:
        state = load_params(path / HF_WEIGHTS_FILE)
    config = config_from_hf(read_json(path / HF_CONFIG_FILE), str(path / HF_CONFIG_FILE))
    params, ignored = params_from_hf(config, state)
    notes = _casing_notes(path)
    decoder = state.get("cls.predictions.decoder.weight")
    if decoder is not None and names.WORD_EMBEDDING in params and not np.array_equal(decoder, params[names.WORD_EMBEDDING]):
        notes.append(f"{path}: its masked-LM decoder is not tied to the word embeddings (tie_word_embeddings: false); "
                     "it is left out: ERNIE's head projects with the word embeddings, so that head predicts "
                     "other logits until it is trained")
    if any(v.dtype == np.float16 for v in params.values()):  # Paddle's layers hold float32, as a read bf16 one
        params = {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in params.items()}
        notes.append(f"{path}: float16 weights widened to float32 (exactly)")
    if names.WORD_EMBEDDING in params and names.fc_weight(names.POOLED_FC) not in params:
        params.update(fresh_pooler(config))
        notes.append(f"{path} has no pooler (a masked-LM model): {names.POOLED_FC} starts fresh, "
                     "so the pooled output means nothing until the model is fine-tuned")
    return HfModel(config, params, ignored, notes)


def write_hf_dir(path, config: ErnieConfig, params: Mapping[str, np.ndarray], vocab_file=None,
                 do_lower_case: bool = True, labels: Sequence[str] = (), only_own: bool = False) -> Path:
    """`labels` name a classification head's outputs (HF's id2label); `only_own` as
    `atomic_directory`'s."""
    state, architecture = params_to_hf(config, params)
    values = config_to_hf(config, architecture)
    if labels:
        values.update(id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    elif architecture == "ErnieForSequenceClassification":
        values.update(num_labels=int(state["classifier.bias"].shape[0]))
    path = Path(path)
    with atomic_directory(path, only_own) as tmp:
        (tmp / HF_CONFIG_FILE).write_text(json.dumps(values, indent=2) + "\n")
        save_params(tmp / HF_WEIGHTS_FILE, state, fmt="pt")
        if vocab_file is not None and is_sentencepiece(vocab_file):
            _write_sentencepiece_tokenizer(tmp, vocab_file, config.max_position_embeddings)
        elif vocab_file is not None:
            write_wordpiece_tokenizer(tmp, vocab_file, "BertTokenizer", do_lower_case, config.max_position_embeddings)
    return path


def write_wordpiece_tokenizer(directory: Path, vocab_file, tokenizer_class: str, do_lower_case: bool,
                              model_max_length: int) -> None:
    """`vocab.txt` one token a line (the only format HF and PaddleNLP read; an ERNIE vocabulary
    may be `token<TAB>id`) and a `tokenizer_config.json` naming `tokenizer_class`."""
    vocab = load_vocab(vocab_file)
    (directory / "vocab.txt").write_text("".join(f"{t}\n" for t in sorted(vocab, key=vocab.get)), encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": tokenizer_class, "do_lower_case": do_lower_case, "model_max_length": model_max_length},
        indent=2) + "\n")


def _write_sentencepiece_tokenizer(directory: Path, vocab_file, model_max_length: int) -> None:
    """A SentencePiece model's pipeline as `tokenizer.json`, which `transformers` loads as a fast
    tokenizer giving this library's ids, with [CLS]/[SEP] around one text or a pair. A Chinese
    model takes words separated by spaces there (this library cuts raw text with jieba first)."""
    from tokenizers.processors import TemplateProcessing
    tokenizer = SentencePieceTokenizer(vocab_file)
    backend = tokenizer.backend
    backend.post_processor = TemplateProcessing(
        single=f"{CLS} $A {SEP}", pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
        special_tokens=[(CLS, tokenizer.cls_id), (SEP, tokenizer.sep_id)])
    backend.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "cls_token": CLS, "sep_token": SEP, "pad_token": PAD,
         "mask_token": MASK, "unk_token": UNK, "model_max_length": model_max_length}, indent=2) + "\n")
