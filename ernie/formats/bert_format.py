"""BERT checkpoints as the Hugging Face ecosystem saves them, beyond `hf_format`'s directories:
weights in `pytorch_model.bin` (a torch pickle), and sentence-transformers folders.

`read_hf_checkpoint` reads any of them, ERNIE or BERT: a plain directory (`config.json` with
`model.safetensors` or `pytorch_model.bin`), or a sentence-transformers folder (`modules.json`
naming the Transformer module's folder, the top one or `0_Transformer/`, and the Pooling
module's, `1_Pooling/`). The names are mapped by `hf_format`, which knows BERT's prefix.

`pytorch_model.bin` is what `torch.save(state_dict)` writes: a zip holding `data.pkl`, which
names `torch._utils._rebuild_tensor_v2` and storage classes, and one file of raw bytes per
storage. It is read by the project's restricted unpickler (`paddlenlp_format`) taught those
names: each becomes a numpy function or dtype here, any other global is refused, so no code from
the file runs and torch is not needed.

A sentence-transformers model is trained to give a sentence embedding pooled from the top layer
(the mean over the real tokens, for most), often L2-normalised. How it pools is recorded in the
converted model directory as `sentence_pooling.json`; `finetune_pooling` there names the
fine-tuning `pooling` setting that pools the same way (`mean`), or is null where none does
(sentence-transformers' `cls_token` is the top layer's [CLS] vector, while `pooling: cls`
takes the pooler's output).
"""
from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Dict, List, NamedTuple

import numpy as np

from ernie.formats.checkpoint import CheckpointError, widen_bfloat16
from ernie.formats.hf_format import HF_WEIGHTS_FILE, HfModel, read_hf_dir, read_json
from ernie.formats.paddlenlp_format import _StateDictUnpickler

TORCH_WEIGHTS_FILE = "pytorch_model.bin"
MODULES_FILE = "modules.json"
POOLING_RECORD_FILE = "sentence_pooling.json"

# bfloat16 elements as numpy holds them: their 16 bits, under a field name that tells them apart
_BFLOAT16 = np.dtype([("bfloat16", "u2")])
# torch's storage classes -> the numpy type of their elements
_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                   "BFloat16Storage": _BFLOAT16, "LongStorage": np.int64, "IntStorage": np.int32,
                   "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


# ---- pytorch_model.bin -------------------------------------------------------------------------

def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *_unused) -> np.ndarray:
    """`torch._utils._rebuild_tensor_v2` in numpy: a copy of the view of `storage` that `offset`,
    `size` and `stride` (in elements) describe, checked to lie inside it, since a strided view
    past its end would read memory that is not the file's."""
    size, stride = tuple(size), tuple(stride)
    if not all(size):
        return np.zeros(size, storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if offset < 0 or min(stride, default=0) < 0 or last >= len(storage):
        raise pickle.UnpicklingError(f"a tensor of size {size} and stride {stride} at offset {offset} "
                                     f"lies outside its storage of {len(storage)} elements")
    view = np.lib.stride_tricks.as_strided(storage[offset:], size, [s * storage.itemsize for s in stride])
    return view.copy()


class _TorchStateDictUnpickler(_StateDictUnpickler):
    """Reads `data.pkl` of a torch zip archive; storages come from the archive's `data/` files."""

    def __init__(self, archive: zipfile.ZipFile, root: str):
        super().__init__(io.BytesIO(archive.read(f"{root}data.pkl")))
        self._archive, self._root, self._storages = archive, root, {}
        big_endian = f"{root}byteorder" in archive.namelist() and archive.read(f"{root}byteorder") == b"big"
        self._byteorder = ">" if big_endian else "<"

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return np.dtype(_STORAGE_DTYPES[name])
        return super().find_class(module, name)

    def persistent_load(self, pid):
        kind, dtype, key, _location, _numel = pid
        if kind != "storage" or not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError(f"unexpected persistent record {pid!r}")
        if key not in self._storages:
            data = self._archive.read(f"{self._root}data/{key}")
            self._storages[key] = np.frombuffer(data, dtype.newbyteorder(self._byteorder))
        return self._storages[key]


def read_torch_state_dict(path) -> Dict[str, np.ndarray]:
    """{name: array} of what `torch.save(model.state_dict())` wrote (torch 1.6 and later)."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not torch's zip format (saved by torch older than 1.6?); "
                              "load it with torch and save model.safetensors instead")
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise CheckpointError(f"{path}: expected one data.pkl in the archive, found {len(pickles)}")
            state = _TorchStateDictUnpickler(archive, pickles[0][:-len("data.pkl")]).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            zipfile.BadZipFile) as err:
        raise CheckpointError(f"{path}: not a readable torch state dict ({err})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return {name: widen_bfloat16(value["bfloat16"]) if value.dtype.names == ("bfloat16",) else value
            for name, value in state.items() if isinstance(value, np.ndarray)}


def read_weights_dir(path: Path) -> HfModel:
    """A plain HF directory, its weights from `model.safetensors` or else `pytorch_model.bin`."""
    if (path / HF_WEIGHTS_FILE).is_file():
        return read_hf_dir(path)
    if (path / TORCH_WEIGHTS_FILE).is_file():
        return read_hf_dir(path, state=read_torch_state_dict(path / TORCH_WEIGHTS_FILE))
    sharded = [f.name for f in path.glob("*.index.json")]
    if sharded:
        raise CheckpointError(f"{path}: weights sharded over several files ({sharded[0]}) are not read; "
                              f"save the model whole (save_pretrained(..., max_shard_size='100GB'))")
    raise CheckpointError(f"{path}: no {HF_WEIGHTS_FILE} or {TORCH_WEIGHTS_FILE}")


# ---- sentence-transformers folders -------------------------------------------------------------

def _modules(path: Path) -> Dict[str, Path]:
    """{module kind (Transformer, Pooling, Normalize, ...): its folder} from `modules.json`."""
    modules = read_json(path / MODULES_FILE)
    if not isinstance(modules, list) or not all(isinstance(m, dict) and {"type", "path"} <= m.keys() for m in modules):
        raise CheckpointError(f"{path / MODULES_FILE}: expected a list of modules, each with a type and a path")
    found = {m["type"].rsplit(".", 1)[-1]: path / m["path"] for m in modules}
    for kind in ("Transformer", "Pooling"):
        if kind not in found:
            raise CheckpointError(f"{path / MODULES_FILE} names no {kind} module")
    return found


def pooling_record(modules: Dict[str, Path], top: Path) -> dict:
    """How the sentence-transformers model pools, from its Pooling module's config."""
    config_file = modules["Pooling"] / "config.json"
    prefix = "pooling_mode_"
    modes = [key[len(prefix):] for key, on in read_json(config_file).items() if key.startswith(prefix) and on is True]
    # modules after the pooling that are not read (a Dense projection, as LaBSE's): the sentence
    # vector it was trained to give is not the pooled one, and no fine-tuning pooling gives it
    left_out = sorted(set(modules) - {"Transformer", "Pooling", "Normalize"})
    record = {"pooling_modes": modes, "normalize": "Normalize" in modules,
              "finetune_pooling": "mean" if modes == ["mean_tokens"] and not left_out else None,
              "from": str(config_file.relative_to(top))}
    if left_out:
        record["modules_left_out"] = left_out
    seq_config = modules["Transformer"] / "sentence_bert_config.json"
    if seq_config.is_file() and "max_seq_length" in read_json(seq_config):
        record["max_seq_length"] = read_json(seq_config)["max_seq_length"]
    return record


def _pooling_note(record: dict) -> str:
    how = "+".join(record["pooling_modes"]) + (", L2-normalised" if record["normalize"] else "")
    if record.get("modules_left_out"):
        how += f", then {'+'.join(record['modules_left_out'])} (not read)"
    use = (f"fine-tune with --set pooling={record['finetune_pooling']} to pool as it was trained"
           if record["finetune_pooling"] else "no fine-tuning pooling setting pools the same way")
    return f"a sentence-transformers model pooling {how}: recorded in {POOLING_RECORD_FILE}; {use}"


# ---- any of them -------------------------------------------------------------------------------

class HfCheckpoint(NamedTuple):
    model: HfModel
    weights_dir: Path               # where config.json and the weights (and most often vocab.txt) are
    extra_files: Dict[str, str]     # {name: text} for the converted model directory


def is_sentence_transformers_dir(path) -> bool:
    return (Path(path) / MODULES_FILE).is_file()


def read_hf_checkpoint(path) -> HfCheckpoint:
    """An HF ERNIE or BERT checkpoint: a plain directory or a sentence-transformers folder."""
    path = Path(path)
    if not is_sentence_transformers_dir(path):
        return HfCheckpoint(read_weights_dir(path), path, {})
    modules = _modules(path)
    record = pooling_record(modules, path)
    model = read_weights_dir(modules["Transformer"])
    notes: List[str] = [*model.notes, _pooling_note(record)]
    return HfCheckpoint(model._replace(notes=notes), modules["Transformer"],
                        {POOLING_RECORD_FILE: json.dumps(record, indent=2) + "\n"})
