"""Model directories: `ernie_config.json` + `vocab.txt` + `params.safetensors`.

Parameters are stored under their original ERNIE names in safetensors, which loads without
unpickling. Every load checks the file's integrity and each tensor's shape against the config.
This module needs no Paddle; moving arrays into a layer or a static scope lives in `ernie.model.params_io`.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from ernie.model.config import CONFIG_FILE_NAME, ErnieConfig
from ernie.model.errors import CheckpointError
from ernie.model.param_names import encoder_param_shapes, layer_prefix, pretraining_head_param_shapes
from ernie_common.fileio import atomic_directory
from ernie_common.tokenization import TOKENIZER_FILES, load_vocab

PARAMS_FILE_NAME = "params.safetensors"
VOCAB_FILE_NAME = "vocab.txt"
# a model's casing: Hugging Face's tokenizer_config.json, which a converted model keeps from its source
CASING_FILE = "tokenizer_config.json"


def save_params(path, params: Mapping[str, np.ndarray], fmt: str = "ernie") -> None:
    """Writes a safetensors file (call inside an atomic directory or via `save_model_dir`).

    `fmt` goes into the file's metadata; Hugging Face accepts only its own values ("pt")."""
    save_file({name: np.ascontiguousarray(value) for name, value in params.items()}, str(path),
              metadata={"format": fmt})


def load_params(path) -> Dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"parameter file not found: {path}")
    try:
        return load_file(str(path))
    except TypeError:  # a BF16 tensor: numpy has no bfloat16
        return _load_widening_bfloat16(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): "
                              f"{err}") from None


_SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
                       "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}


def widen_bfloat16(bits: np.ndarray) -> np.ndarray:
    """bfloat16 values (their 16 bits) as float32, exactly: a bfloat16 is a float32's top half."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _load_widening_bfloat16(path: Path) -> Dict[str, np.ndarray]:
    """A safetensors file read by its layout (8 bytes of header length, the JSON header, the
    data), its BF16 tensors widened to float32: what Hugging Face saves a bfloat16 model as."""
    try:
        with open(path, "rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
            data = f.read()
        found = {}
        for name, spec in header.items():
            if name == "__metadata__":
                continue
            begin, end = spec["data_offsets"]
            array = np.frombuffer(data[begin:end], _SAFETENSORS_DTYPES[spec["dtype"]]).reshape(spec["shape"])
            found[name] = widen_bfloat16(array) if spec["dtype"] == "BF16" else array.copy()
        return found
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): {err!r}") from None


def parameter_names(model_dir) -> List[str]:
    """The parameter names of a model directory, read without loading the tensors."""
    from safetensors import safe_open
    path = Path(model_dir) / PARAMS_FILE_NAME
    try:
        with safe_open(str(path), framework="numpy") as f:
            return list(f.keys())
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file: {err}") from None


_LAYER = re.compile(re.escape(layer_prefix(0))[:-1] + r"(\d+)_")  # encoder_layer_<i>_...


def check_params(config: ErnieConfig, params: Mapping[str, np.ndarray], source: str) -> None:
    """Every encoder parameter is present with the shape its config implies; known head
    parameters, where present, fit too. Other names (task heads of later stages) pass."""
    expected = encoder_param_shapes(config)
    missing = [name for name in expected if name not in params]
    if missing:
        raise CheckpointError(f"{source}: missing {len(missing)} encoder parameter(s), first "
                              f"{missing[:3]}; does the config match the checkpoint?")
    layers = {int(m.group(1)) for m in map(_LAYER.match, params) if m}
    if layers and max(layers) >= config.num_hidden_layers:  # the layers past the config's were dropped unseen
        raise CheckpointError(f"{source}: holds {max(layers) + 1} encoder layers, but the config says "
                              f"num_hidden_layers {config.num_hidden_layers}; does the config match the checkpoint?")
    expected.update(pretraining_head_param_shapes(config))
    for name, shape in expected.items():
        if name in params and tuple(params[name].shape) != shape:
            raise CheckpointError(f"{source}: parameter {name} has shape {tuple(params[name].shape)}, "
                                  f"config implies {shape}")


def save_model_dir(path, config: ErnieConfig, params: Mapping[str, np.ndarray],
                   vocab_file=None, extra_files: Optional[Mapping[str, str]] = None, only_own: bool = False) -> Path:
    """Writes a complete model directory atomically: a reader never sees a partial one.
    `extra_files` ({name: text}) go in with it (a fine-tuned model's task description); a
    SentencePiece vocabulary's model and settings travel with its vocab.txt. `only_own` as
    `atomic_directory`'s."""
    check_params(config, params, source="parameters to save")
    path = Path(path)
    with atomic_directory(path, only_own) as tmp:
        (tmp / CONFIG_FILE_NAME).write_text(config.to_json(), encoding="utf-8")
        if vocab_file is not None:
            shutil.copyfile(vocab_file, tmp / VOCAB_FILE_NAME)
            for name in TOKENIZER_FILES:
                if Path(vocab_file).with_name(name).is_file():
                    shutil.copyfile(Path(vocab_file).with_name(name), tmp / name)
        save_params(tmp / PARAMS_FILE_NAME, params)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
    return path


def casing_files(do_lower_case: Optional[bool]) -> Dict[str, str]:
    """The file a model directory records its casing in (`CASING_FILE`, as Hugging Face's
    directories do), for `save_model_dir`'s `extra_files`; none where the casing is not known."""
    return {CASING_FILE: json.dumps({"do_lower_case": do_lower_case}) + "\n"} if isinstance(do_lower_case, bool) else {}


def _casing(lower: bool) -> str:
    return "lower-cased" if lower else "cased"


def decide_casing(recorded: Optional[bool], asked: Optional[bool], where, fix: str) -> bool:
    """Whether to lower-case the text a model reads: as `asked` (a setting or flag), else as the
    model's record (`recorded`, read from `where`), else lower-cased, the released models' way.
    `asked` against the record is an error saying `fix`: the model would read text cased otherwise
    than it learned from, a loss no score would name."""
    if recorded is not None and asked is not None and recorded != asked:
        raise CheckpointError(f"{where} records that the model learned from {_casing(recorded)} text; reading "
                              f"{_casing(asked)} text would lose what it learned: {fix}")
    return next(v for v in (asked, recorded, True) if v is not None)


def model_lower_cases(model_dir) -> Optional[bool]:
    """Whether the model's text was lower-cased, where its directory records it (`CASING_FILE`,
    in a Hugging Face directory as in a converted model's)."""
    path = Path(model_dir) / CASING_FILE
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("do_lower_case")
    except (ValueError, AttributeError):
        raise CheckpointError(f"{path}: not a JSON object") from None
    return value if isinstance(value, bool) else None


def load_model_dir(path) -> tuple[ErnieConfig, Dict[str, np.ndarray], Optional[Path]]:
    """Returns (config, params, vocab path or None) of a model directory, checked."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"model directory not found: {path}")
    config = ErnieConfig.from_file(path / CONFIG_FILE_NAME)
    params = load_params(path / PARAMS_FILE_NAME)
    check_params(config, params, source=str(path / PARAMS_FILE_NAME))
    vocab = path / VOCAB_FILE_NAME
    if not vocab.is_file():
        return config, params, None
    check_vocab_fits(vocab, config)
    return config, params, vocab


def check_vocab_fits(vocab_file, config: ErnieConfig) -> None:
    n_tokens = len(load_vocab(vocab_file))
    if n_tokens != config.vocab_size:
        raise CheckpointError(f"{vocab_file} has {n_tokens} tokens but the model config says "
                              f"vocab_size {config.vocab_size}")
