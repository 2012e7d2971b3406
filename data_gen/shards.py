"""Binary shards of examples: one file each, memory-mapped when read, checked as read.

Layout: the 8-byte magic `ERNIESHD`, a little-endian uint32 header length, the header's CRC-32
(uint32), a JSON header (format version, example and token counts, the task table the shard was
written with (each task's id, level and fields, `ernie_common.tasks.TaskSpec`), for each array
its dtype, byte offset and length, and a CRC-32 for every `block_bytes` of the data), then the
data: the arrays, each aligned to 64 bytes, zeros between them. The arrays are the examples' own
(`src_ids`, `sent_ids`, `task`, `label`, `token_tasks`) and the fields the tasks declare, each of
its declared dtype (`examples.shard_fields`). Per-token arrays are concatenated over the examples
with `token_offsets` [n + 1] marking where each starts; each list field likewise, with its own
`<name>_offsets`. A writer streams each array to its own temporary file and assembles the shard
under a temporary name, renamed into place when complete.

Reading checks the header's CRC at once and a data block's the first time anything in it is
read (so a corpus of any size is not hashed whole before training starts); a flipped byte
anywhere, padding included, or a truncated file is a `ShardError` naming the file and the bytes,
raised before the example that holds them is used. Reading a shard also checks its task table
against the registered tasks (their ids, levels and fields) and its arrays against that table.
"""
from __future__ import annotations

import json
import os
import re
import struct
import tempfile
import zlib
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np

from ernie_common import tasks
from ernie_common.fileio import atomic_path, remove_dead_temporaries, temporary_prefix
from ernie_common.tasks import EXAMPLE, LIST, PLAIN_STREAM, TOKEN, Field

from .examples import EXAMPLE_FIELDS, INPUT_FIELDS, NO_TASK, Example, lengths_of, of_kind, offsets_of, shard_fields

MANIFEST = "manifest.json"  # beside the shards: what `make` wrote, with what and from what
MAGIC = b"ERNIESHD"
# 2: the task table, label arrays named by the tasks, task ids instead of positions, checksums
# 3: the tasks' declared fields (dtype, per token/example/list), recorded in the task table
FORMAT_VERSION = 3
_ALIGN = 64
BLOCK_BYTES = 1 << 20  # the data is checked a block at a time
_PREFIX = len(MAGIC) + 8  # magic, header length, header CRC-32


def read_manifest(path) -> dict:
    """The manifest `make` wrote at `path`, or a ShardError naming it: missing, unreadable, not
    JSON, or without what every reader takes from it (its vocabulary, config and shards)."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ShardError(f"{path} not found: run `python -m data_gen make` first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ShardError(f"{path}: not a manifest as `data_gen make` writes it ({err}): run make again") from None
    missing = sorted({"vocab", "config", "shards"} - set(manifest)) if isinstance(manifest, dict) else ["all"]
    if not missing and not {"path", "sha256", "size"} <= set(manifest["vocab"]):
        missing = ["vocab.path, vocab.sha256, vocab.size"]
    if missing:
        raise ShardError(f"{path}: not a manifest as `data_gen make` writes it (it lacks {', '.join(missing)}): "
                         f"run make again")
    return manifest


def recorded_path(manifest: dict, path: str) -> Path:
    """A file a manifest names (its vocabulary, a task module), as the data config gave it: a
    relative path is the directory `make` ran in, so it is looked for from the working directory,
    then from that directory (`made_in`, manifests of before 2026-12-08 lack it)."""
    given = Path(path)
    if given.is_absolute() or given.exists() or "made_in" not in manifest:
        return given
    there = Path(manifest["made_in"]) / given
    return there if there.exists() else given


def load_recorded_modules(manifest: dict) -> None:
    """Imports the task modules the manifest's data config names (`task_modules`), the files
    among them found by `recorded_path`: before its shards are read, whose task table names each
    module as the config gave it."""
    try:
        tasks.load_modules(str(recorded_path(manifest, m)) if m.endswith(".py") else m
                           for m in manifest.get("config", {}).get("task_modules", []))
    except tasks.TaskError as err:
        raise tasks.TaskError(f"the shards' manifest names a task module that cannot be loaded (a relative path is "
                              f"found from here or from {manifest.get('made_in', 'where make ran')}): {err}") from None


def heldout_shards(manifest: dict) -> List[dict]:
    """The entries of the held-out shards a manifest lists (`heldout_documents`; none without)."""
    return manifest.get("heldout", {}).get("shards", [])


def every_shard(manifest: dict) -> List[dict]:
    """The entries of every shard a manifest lists: the training shards, then the held-out ones."""
    return manifest["shards"] + heldout_shards(manifest)


class ShardError(ValueError):
    """A shard that is missing, truncated or corrupt."""


def array_dtypes(fields: Sequence[Field]) -> Dict[str, np.dtype]:
    """Every array of a shard of examples with these fields, in the order they are stored, with
    its dtype: the offsets (per-token arrays', then each list field's), the per-token arrays, the
    per-example ones, the lists."""
    lists = of_kind(fields, LIST)
    dtypes = {"token_offsets": np.int64, **{offsets_of(f.name): np.int64 for f in lists}, **INPUT_FIELDS,
              **{f.name: f.dtype for f in of_kind(fields, TOKEN)}, **EXAMPLE_FIELDS,
              **{f.name: f.dtype for f in (*of_kind(fields, EXAMPLE), *lists)}}
    return {name: np.dtype(dtype) for name, dtype in dtypes.items()}


class ShardWriter:
    """`task_table`: {name: TaskSpec dict} of the tasks the examples were made for; `fields`: the
    fields their examples store (`examples.shard_fields` of those tasks)."""

    def __init__(self, path, task_table: Dict[str, dict], fields: Sequence[Field]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.task_table, self.fields = task_table, tuple(fields)
        # every array, the offsets too, goes to a file as it comes: memory does not grow with the shard
        self._dtypes = array_dtypes(self.fields)
        remove_dead_temporaries(self.path)
        self._dir = tempfile.TemporaryDirectory(prefix=temporary_prefix(self.path), dir=self.path.parent)
        self._files = {name: open(Path(self._dir.name) / name, "wb") for name in self._dtypes}
        self.n_examples = self.n_tokens = 0
        # examples by sentence-level task code, and of none with token-level labels ("plain"): what
        # a data-parallel run checks every rank holds, from the manifest, without opening the shards
        self.streams: Counter = Counter()
        self._listed = {f.name: 0 for f in of_kind(self.fields, LIST)}  # list field -> its values so far
        for name in ("token", *self._listed):
            self._files[offsets_of(name)].write(np.zeros(1, np.int64).tobytes())

    def add_block(self, block: Dict[str, np.ndarray]) -> None:
        """Appends a block of examples (`examples.assemble`)."""
        block = {**block, "token_offsets": self.n_tokens + np.cumsum(block["lengths"], dtype=np.int64),
                 **{offsets_of(name): n + np.cumsum(block[lengths_of(name)], dtype=np.int64)
                    for name, n in self._listed.items()}}
        for name, f in self._files.items():
            f.write(np.ascontiguousarray(block[name], self._dtypes[name]).tobytes())
        self.n_examples += len(block["lengths"])
        self.n_tokens += int(block["lengths"].sum())
        codes = np.asarray(block["task"])
        self.streams.update({str(int(c)): int(n) for c, n in zip(*np.unique(codes[codes != NO_TASK], return_counts=True))})
        plain = int(((codes == NO_TASK) & (np.asarray(block["token_tasks"]) > 0)).sum())
        if plain:
            self.streams[PLAIN_STREAM] += plain
        for name in self._listed:
            self._listed[name] += int(block[lengths_of(name)].sum())

    def close(self, path=None) -> Path:
        """Assembles the shard at `path` (default: the writer's path), atomically."""
        for f in self._files.values():
            f.close()
        arrays = {name: Path(self._dir.name) / name for name in self._files}
        layout, position = {}, 0
        sizes = {name: arrays[name].stat().st_size for name in arrays}
        for name in arrays:
            layout[name] = {"dtype": np.dtype(self._dtypes[name]).str, "offset": position, "nbytes": sizes[name]}
            position += -(-sizes[name] // _ALIGN) * _ALIGN
        n_blocks = -(-position // BLOCK_BYTES)

        def header_bytes(crcs: str) -> bytes:
            return json.dumps({"version": FORMAT_VERSION, "examples": self.n_examples, "tokens": self.n_tokens,
                               "tasks": self.task_table, "arrays": layout, "block_bytes": BLOCK_BYTES,
                               "block_crc32": crcs}).encode()

        # the CRCs are fixed-width hex, so the header's length is known before the data is
        header_len = len(header_bytes("0" * 8 * n_blocks))
        data_start = -(-(_PREFIX + header_len) // _ALIGN) * _ALIGN
        target = Path(path or self.path)
        with atomic_path(target) as tmp, open(tmp, "wb") as out:
            out.seek(data_start)
            blocks = _BlockCrc(out)
            for name in arrays:
                with open(arrays[name], "rb") as f:
                    while chunk := f.read(1 << 22):
                        blocks.write(chunk)
                blocks.write(bytes(-(-sizes[name] // _ALIGN) * _ALIGN - sizes[name]))
            header = header_bytes(blocks.finish())
            assert len(header) == header_len
            out.seek(0)
            out.write(MAGIC + struct.pack("<II", len(header), zlib.crc32(header)) + header)
            out.write(bytes(data_start - _PREFIX - len(header)))
        self._dir.cleanup()
        return target


class _BlockCrc:
    """Writes the data region and keeps the CRC-32 of each `BLOCK_BYTES` of it."""

    def __init__(self, out):
        self.out, self.crcs, self.crc, self.filled = out, [], 0, 0

    def write(self, data: bytes) -> None:
        self.out.write(data)
        view = memoryview(data)
        while len(view):
            take = min(len(view), BLOCK_BYTES - self.filled)
            self.crc = zlib.crc32(view[:take], self.crc)
            self.filled += take
            view = view[take:]
            if self.filled == BLOCK_BYTES:
                self.crcs.append(self.crc)
                self.crc, self.filled = 0, 0

    def finish(self) -> str:
        if self.filled:
            self.crcs.append(self.crc)
        return "".join(f"{crc:08x}" for crc in self.crcs)


class Shard:
    """Random access to the examples of one shard file, each checked before it is used."""

    def _version_error(self, version) -> str:
        return (f"{self.path}: shard format version {version}, this reader knows {FORMAT_VERSION}: "
                f"make the shards again with `python -m data_gen make`")

    def __init__(self, path):
        self.path = Path(path)
        try:
            size = os.path.getsize(self.path)
            with open(self.path, "rb") as f:
                head = f.read(_PREFIX)
                if len(head) < _PREFIX or head[:len(MAGIC)] != MAGIC:
                    raise ShardError(f"{self.path}: not an ERNIE shard (bad magic)")
                header_len, header_crc = struct.unpack("<II", head[len(MAGIC):])
                if _PREFIX + header_len > size:
                    raise ShardError(f"{self.path}: truncated ({size} bytes, the header alone needs "
                                     f"{_PREFIX + header_len})")
                raw = f.read(header_len)
            if zlib.crc32(raw) != header_crc:
                # format 1 had no header checksum: its header starts where format 2 keeps the checksum
                older = re.match(rb'\{"version": (\d+),', head[len(MAGIC) + 4:] + raw)
                if older and int(older.group(1)) != FORMAT_VERSION:
                    raise ShardError(self._version_error(int(older.group(1))))
                raise ShardError(f"{self.path}: corrupt shard header (its checksum fails)")
            header = json.loads(raw)
        except ShardError:
            raise
        except OSError as err:
            raise ShardError(f"{self.path}: cannot read shard: {err.strerror}") from None
        except (ValueError, UnicodeDecodeError):
            raise ShardError(f"{self.path}: corrupt shard header") from None
        if header.get("version") != FORMAT_VERSION:
            raise ShardError(self._version_error(header.get("version")))
        try:
            self.tasks = tasks.check_table(header["tasks"], str(self.path))
            self.fields = shard_fields(self.tasks)
        except tasks.TaskError as err:
            raise ShardError(str(err)) from None
        self._check_arrays(header["arrays"])
        self._data_start = -(-(_PREFIX + header_len) // _ALIGN) * _ALIGN
        crcs = header["block_crc32"]
        self._block_bytes = header["block_bytes"]
        self._crcs = [int(crcs[i:i + 8], 16) for i in range(0, len(crcs), 8)]
        data_bytes = max((spec["offset"] + -(-spec["nbytes"] // _ALIGN) * _ALIGN for spec in header["arrays"].values()),
                         default=0)
        if self._data_start + data_bytes > size:
            raise ShardError(f"{self.path}: truncated ({size} bytes, its data needs {self._data_start + data_bytes})")
        self._verified = bytearray(len(self._crcs))  # 1: the block passed its checksum
        self._unverified = len(self._crcs)
        self._data = np.memmap(self.path, dtype=np.uint8, mode="r", offset=self._data_start,
                               shape=(data_bytes,)) if data_bytes else np.zeros(0, np.uint8)
        self._arrays: Dict[str, np.ndarray] = {}
        self._spans: Dict[str, tuple] = {}  # name -> (byte offset in the data, item size)
        for name, spec in header["arrays"].items():
            dtype = np.dtype(spec["dtype"])
            self._arrays[name] = self._data[spec["offset"]:spec["offset"] + spec["nbytes"]].view(dtype)
            self._spans[name] = (spec["offset"], dtype.itemsize)
        self.n_examples = header["examples"]
        self._lists = [f.name for f in of_kind(self.fields, LIST)]
        # the offsets are checked whole when the shard opens
        ends = [("token", header["tokens"]), *((name, len(self._arrays[name])) for name in self._lists)]
        for name, end in ends:
            offsets = self.array(offsets_of(name))
            if len(offsets) != self.n_examples + 1 or (self.n_examples and offsets[-1] != end):
                raise ShardError(f"{self.path}: corrupt shard ({offsets_of(name)} does not match the header)")
        self._checked = bytearray(self.n_examples)  # examples whose bytes were checked
        self._token_arrays = (*INPUT_FIELDS, *(f.name for f in of_kind(self.fields, TOKEN)))
        self._example_arrays = (*EXAMPLE_FIELDS, *(f.name for f in of_kind(self.fields, EXAMPLE)))

    def _check_arrays(self, recorded: Dict[str, dict]) -> None:
        """The shard's arrays must be those of its task table's fields, of their dtypes."""
        mine = {name: dtype.str for name, dtype in array_dtypes(self.fields).items()}
        theirs = {name: spec["dtype"] for name, spec in recorded.items()}
        if theirs != mine:
            raise ShardError(f"{self.path}: its arrays {_listed(theirs)} are not those of its tasks' fields "
                             f"{_listed(mine)}: make the shards again with `python -m data_gen make`")

    def _check(self, start: int, end: int) -> None:
        """Verifies the blocks that data bytes [start, end) lie in, each once."""
        if end <= start:
            return
        verified = self._verified
        for block in range(start // self._block_bytes, (end - 1) // self._block_bytes + 1):
            if not verified[block]:
                a, b = block * self._block_bytes, min((block + 1) * self._block_bytes, len(self._data))
                if zlib.crc32(self._data[a:b]) != self._crcs[block]:
                    raise ShardError(f"{self.path}: corrupt shard: bytes {self._data_start + a}-"
                                     f"{self._data_start + b} fail their checksum")
                verified[block] = 1
                self._unverified -= 1

    def _slice(self, name: str, first: int, last: int) -> np.ndarray:
        offset, itemsize = self._spans[name]
        self._check(offset + first * itemsize, offset + last * itemsize)
        return np.asarray(self._arrays[name][first:last])

    def array(self, name: str) -> np.ndarray:
        """A whole array, checked."""
        return self._slice(name, 0, len(self._arrays[name]))

    def verify(self) -> None:
        """Checks every block now (`data_gen make` does, before it keeps a shard), reading the
        file a block at a time rather than through the map, whose pages would stay resident."""
        remaining = len(self._data)
        with open(self.path, "rb") as f:
            f.seek(self._data_start)
            for block, crc in enumerate(self._crcs):
                data = f.read(min(self._block_bytes, remaining))
                remaining -= len(data)
                if zlib.crc32(data) != crc:
                    a = block * self._block_bytes
                    raise ShardError(f"{self.path}: corrupt shard: bytes {self._data_start + a}-"
                                     f"{self._data_start + a + len(data)} fail their checksum")
        self._verified[:] = b"\x01" * len(self._verified)
        self._unverified = 0

    def read(self, name: str, first: int, last: int) -> np.ndarray:
        """Items [first, last) of an array, read from the file (memory: the slice's size), for
        passes over a whole shard; unchecked, so `verify` first."""
        offset, itemsize = self._spans[name]
        return np.fromfile(self.path, dtype=self._arrays[name].dtype, count=int(last - first),
                           offset=self._data_start + offset + int(first) * itemsize)

    def __len__(self) -> int:
        return self.n_examples

    def _ranges(self, i: int) -> List[Tuple[Sequence[str], int, int]]:
        """(arrays, first, end) of example i's items: its tokens, itself, each list's values."""
        a = self._arrays
        out = [(self._token_arrays, int(a["token_offsets"][i]), int(a["token_offsets"][i + 1])),
               (self._example_arrays, i, i + 1)]
        for name in self._lists:
            offsets = a[offsets_of(name)]
            out.append(((name,), int(offsets[i]), int(offsets[i + 1])))
        return out

    def _check_example(self, i: int, ranges) -> None:
        for names, first, last in ranges:
            for name in names:
                offset, itemsize = self._spans[name]
                self._check(offset + first * itemsize, offset + last * itemsize)
        self._checked[i] = 1

    def __getitem__(self, i: int) -> Example:
        if not 0 <= i < self.n_examples:
            raise IndexError(i)
        a = self._arrays
        ranges = self._ranges(i)
        if self._unverified and not self._checked[i]:  # an example's bytes are checked the first time it is read
            self._check_example(i, ranges)
        (token_names, t0, t1), _, *lists = ranges
        tokens = {name: np.asarray(a[name][t0:t1]) for name in token_names}
        return Example(src_ids=tokens.pop("src_ids"), sent_ids=tokens.pop("sent_ids"), labels=tokens,
                       task=int(a["task"][i]), label=int(a["label"][i]), token_tasks=int(a["token_tasks"][i]),
                       values={name: a[name][i] for name in self._example_arrays[len(EXAMPLE_FIELDS):]},
                       lists={name: np.asarray(a[name][m0:m1]) for (name,), m0, m1 in lists})

    def __iter__(self) -> Iterator[Example]:
        for i in range(self.n_examples):
            yield self[i]


def _listed(dtypes: Dict[str, str]) -> str:
    return "[" + ", ".join(f"{name}:{np.dtype(dtype).name}" for name, dtype in dtypes.items()) + "]"
