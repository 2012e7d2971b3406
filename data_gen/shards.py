"""Binary shards of examples: one file each, memory-mapped when read.

Layout: the 8-byte magic `ERNIESHD`, a little-endian uint32 header length, a JSON header
(format version, example/token/mask counts, the task table the shard was written with (each
task's id, level and label arrays, `ernie_common.tasks.TaskSpec`), the names of the per-token
label arrays, and for each array its dtype, byte offset and length), then the arrays, each
aligned to 64 bytes. Reading a shard checks its task table against the registered tasks.
Per-token arrays are concatenated over the examples with `token_offsets` [n + 1] marking where
each starts; `mask_pos`/`mask_label` (offline masking) likewise with `mask_offsets`. A writer
streams each array to its own temporary file and assembles the shard under a temporary name,
renamed into place when complete.
"""
from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Dict, Iterator, Sequence

import numpy as np

from ernie_common import tasks
from ernie_common.fileio import atomic_path

from .examples import EXAMPLE_FIELDS, INPUT_FIELDS, MASK_FIELDS, Example, token_fields

MANIFEST = "manifest.json"  # beside the shards: what `make` wrote, with what and from what
MAGIC = b"ERNIESHD"
FORMAT_VERSION = 2  # 2: the task table, label arrays named by the tasks, task ids instead of positions
_ALIGN = 64


class ShardError(ValueError):
    """A shard that is missing, truncated or corrupt."""


class ShardWriter:
    """`task_table`: {name: TaskSpec dict} of the tasks the examples were made for; `label_fields`:
    the per-token label arrays they carry."""

    def __init__(self, path, task_table: Dict[str, dict], label_fields: Sequence[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.task_table, self.label_fields = task_table, list(label_fields)
        self._dtypes = {**token_fields(self.label_fields), **EXAMPLE_FIELDS, **MASK_FIELDS}
        self._dir = tempfile.TemporaryDirectory(prefix=f".{self.path.name}.", dir=self.path.parent)
        self._files = {name: open(Path(self._dir.name) / name, "wb") for name in self._dtypes}
        self.n_examples = self.n_tokens = self.n_masks = 0
        self._token_offsets = [0]
        self._mask_offsets = [0]

    def add_block(self, block: Dict[str, np.ndarray]) -> None:
        """Appends a block of examples (`examples.assemble`)."""
        for name, f in self._files.items():
            f.write(np.ascontiguousarray(block[name], self._dtypes[name]).tobytes())
        self._token_offsets.extend((self.n_tokens + np.cumsum(block["lengths"])).tolist())
        self._mask_offsets.extend((self.n_masks + np.cumsum(block["mask_lengths"])).tolist())
        self.n_examples += len(block["lengths"])
        self.n_tokens += int(block["lengths"].sum())
        self.n_masks += int(block["mask_lengths"].sum())

    def close(self, path=None) -> Path:
        """Assembles the shard at `path` (default: the writer's path), atomically."""
        for f in self._files.values():
            f.close()
        arrays = {name: Path(self._dir.name) / name for name in self._files}
        offsets = {"token_offsets": np.asarray(self._token_offsets, np.int64),
                   "mask_offsets": np.asarray(self._mask_offsets, np.int64)}
        dtypes = self._dtypes
        layout, position = {}, 0
        sizes = {name: arrays[name].stat().st_size for name in arrays}
        sizes.update({name: a.nbytes for name, a in offsets.items()})
        for name in (*offsets, *arrays):
            layout[name] = {"dtype": np.dtype(offsets[name].dtype if name in offsets else dtypes[name]).str,
                            "offset": position, "nbytes": sizes[name]}
            position += -(-sizes[name] // _ALIGN) * _ALIGN
        header = json.dumps({"version": FORMAT_VERSION, "examples": self.n_examples,
                             "tokens": self.n_tokens, "masks": self.n_masks, "tasks": self.task_table,
                             "label_fields": self.label_fields, "arrays": layout}).encode()
        data_start = -(-(len(MAGIC) + 4 + len(header)) // _ALIGN) * _ALIGN
        target = Path(path or self.path)
        with atomic_path(target) as tmp, open(tmp, "wb") as out:
            out.write(MAGIC + struct.pack("<I", len(header)) + header)
            for name in (*offsets, *arrays):
                out.seek(data_start + layout[name]["offset"])
                if name in offsets:
                    out.write(offsets[name].tobytes())
                else:
                    with open(arrays[name], "rb") as f:
                        while block := f.read(1 << 22):
                            out.write(block)
            out.truncate(data_start + position)
        self._dir.cleanup()
        return target


class Shard:
    """Random access to the examples of one shard file."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            size = os.path.getsize(self.path)
            with open(self.path, "rb") as f:
                head = f.read(len(MAGIC) + 4)
                if len(head) < len(MAGIC) + 4 or head[:len(MAGIC)] != MAGIC:
                    raise ShardError(f"{self.path}: not an ERNIE shard (bad magic)")
                (header_len,) = struct.unpack("<I", head[len(MAGIC):])
                if len(MAGIC) + 4 + header_len > size:
                    raise ShardError(f"{self.path}: truncated ({size} bytes, the header alone needs "
                                     f"{len(MAGIC) + 4 + header_len})")
                header = json.loads(f.read(header_len))
        except ShardError:
            raise
        except OSError as err:
            raise ShardError(f"{self.path}: cannot read shard: {err.strerror}") from None
        except (ValueError, UnicodeDecodeError):
            raise ShardError(f"{self.path}: corrupt shard header") from None
        if header.get("version") != FORMAT_VERSION:
            raise ShardError(f"{self.path}: shard format version {header.get('version')}, this reader knows "
                             f"{FORMAT_VERSION}: make the shards again with `python -m data_gen make`")
        try:
            self.tasks = tasks.check_table(header["tasks"], str(self.path))
        except tasks.TaskError as err:
            raise ShardError(str(err)) from None
        self.label_fields = list(header["label_fields"])
        data_start = -(-(len(MAGIC) + 4 + header_len) // _ALIGN) * _ALIGN
        self.arrays: Dict[str, np.ndarray] = {}
        for name, spec in header["arrays"].items():
            start = data_start + spec["offset"]
            if start + spec["nbytes"] > size:
                raise ShardError(f"{self.path}: truncated ({size} bytes, array {name} needs "
                                 f"{start + spec['nbytes']})")
            dtype = np.dtype(spec["dtype"])
            count = spec["nbytes"] // dtype.itemsize
            self.arrays[name] = (np.memmap(self.path, dtype=dtype, mode="r", offset=start, shape=(count,))
                                 if count else np.zeros(0, dtype))
        self.n_examples = header["examples"]
        offsets = self.arrays["token_offsets"]
        if len(offsets) != self.n_examples + 1 or (self.n_examples and offsets[-1] != header["tokens"]):
            raise ShardError(f"{self.path}: corrupt shard (offsets do not match the header)")

    def __len__(self) -> int:
        return self.n_examples

    def __getitem__(self, i: int) -> Example:
        if not 0 <= i < self.n_examples:
            raise IndexError(i)
        a = self.arrays
        t0, t1 = int(a["token_offsets"][i]), int(a["token_offsets"][i + 1])
        m0, m1 = int(a["mask_offsets"][i]), int(a["mask_offsets"][i + 1])
        return Example(**{name: np.asarray(a[name][t0:t1]) for name in INPUT_FIELDS},
                       labels={name: np.asarray(a[name][t0:t1]) for name in self.label_fields},
                       task=int(a["task"][i]), label=int(a["label"][i]),
                       token_tasks=int(a["token_tasks"][i]),
                       mask_pos=np.asarray(a["mask_pos"][m0:m1]),
                       mask_label=np.asarray(a["mask_label"][m0:m1]))

    def __iter__(self) -> Iterator[Example]:
        for i in range(self.n_examples):
            yield self[i]
