"""Reads released ERNIE static-graph parameter directories without Paddle's legacy IR.

`save_persistables` wrote one file per variable, named after it, in Paddle's LoDTensor stream:
    uint32 version (0) | uint64 lod_level | per level: uint64 byte size, offsets
    uint32 tensor version (0) | int32 desc size | TensorDesc protobuf | raw little-endian data
TensorDesc is `{1: VarType.Type data_type (varint), 2: repeated int64 dims}`.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from ernie.formats.checkpoint import CheckpointError
from ernie.model.config import CONFIG_FILE_NAME, ErnieConfig
from ernie.model.param_names import TASK_EMBEDDING, encoder_param_shapes, pretraining_head_param_shapes

# paddle VarType.Type -> numpy dtype (bfloat16 is read as its raw 16 bits, then widened).
_DTYPES = {0: np.bool_, 1: np.int16, 2: np.int32, 3: np.int64, 4: np.float16, 5: np.float32,
           6: np.float64, 20: np.uint8, 21: np.int8, 22: np.uint16}
_BFLOAT16 = 22


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("varint runs past the end of the tensor description")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _parse_tensor_desc(buf: bytes) -> Tuple[int, List[int]]:
    data_type, dims, pos = None, [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            if field == 1:
                data_type = value
            elif field == 2:
                dims.append(value - (1 << 64) if value >= 1 << 63 else value)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            end = pos + size
            if field == 2:  # packed dims
                while pos < end:
                    value, pos = _varint(buf, pos)
                    dims.append(value)
            pos = end
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")
    if data_type is None:
        raise ValueError("tensor description has no data type")
    return data_type, dims


def read_lod_tensor(path) -> np.ndarray:
    """One variable file written by Paddle's `save_vars`/`save_persistables`."""
    path = Path(path)
    data = path.read_bytes()
    try:
        version, lod_level = struct.unpack_from("<IQ", data, 0)
        if version != 0:
            raise ValueError(f"unsupported LoDTensor version {version}")
        pos = 12
        for _ in range(lod_level):
            (size,) = struct.unpack_from("<Q", data, pos)
            pos += 8 + size
        tensor_version, desc_size = struct.unpack_from("<Ii", data, pos)
        if tensor_version != 0:
            raise ValueError(f"unsupported tensor version {tensor_version}")
        pos += 8
        data_type, dims = _parse_tensor_desc(data[pos:pos + desc_size])
        pos += desc_size
    except (struct.error, ValueError) as err:
        raise CheckpointError(f"{path}: not a Paddle LoDTensor file: {err}") from None
    if data_type not in _DTYPES:
        raise CheckpointError(f"{path}: unsupported Paddle data type {data_type}")
    dtype = np.dtype(_DTYPES[data_type])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - pos != expected:
        raise CheckpointError(f"{path}: holds {len(data) - pos} data bytes, shape {dims} of "
                              f"{dtype.name} needs {expected} (truncated?)")
    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=pos).reshape(dims)
    if data_type == _BFLOAT16:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array.copy()


def _find_params_dir(src: Path) -> Path:
    return src / "params" if (src / "params").is_dir() else src


def read_static_model(src) -> Tuple[ErnieConfig, Dict[str, np.ndarray], List[str]]:
    """A released model: `ernie_config.json` beside (or above) a directory of variable files.

    Released configs omit `use_task_id`; it is inferred from whether `task_embedding` exists.
    Returns (config, params, names of files that are not model parameters, e.g. optimizer moments).
    """
    src = Path(src)
    params_dir = _find_params_dir(src)
    config_file = next((p / CONFIG_FILE_NAME for p in (src, params_dir, params_dir.parent)
                        if (p / CONFIG_FILE_NAME).is_file()), None)
    if config_file is None:
        raise CheckpointError(f"no {CONFIG_FILE_NAME} found in or beside {params_dir}")
    has_task = (params_dir / TASK_EMBEDDING).is_file()
    config = ErnieConfig.from_file(config_file)
    if config.use_task_id != has_task:
        config = config.replace(use_task_id=has_task)
    wanted = {**encoder_param_shapes(config), **pretraining_head_param_shapes(config)}
    params = {name: read_lod_tensor(params_dir / name) for name in wanted
              if (params_dir / name).is_file()}
    others = sorted(p.name for p in params_dir.iterdir() if p.is_file() and p.name not in wanted)
    return config, params, others
