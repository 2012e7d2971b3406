"""Shards checked as they are read: a flipped byte in the header, in any array or in the padding
between arrays, or a truncated file, is an error naming the shard before the example that holds
the bytes is used; a training run stops with that error (or, with `corrupt_shards: skip`, skips
and counts the examples)."""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import yaml

from data_gen.config import DataConfig
from data_gen.make import make
from data_gen.shards import _ALIGN, _PREFIX, Shard, ShardError
from tests.conftest import REPO
from tests.test_data_gen_make import _documents


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory, en_vocab):
    """A shard in blocks of 512 bytes (1 MiB in use), so that blocks are checked one by one."""
    root = tmp_path_factory.mktemp("integrity")
    (root / "corpus.txt").write_text("".join("".join(doc) + "\n" for doc in _documents(4, 30)), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("data_gen.shards.BLOCK_BYTES", 512)
        make(DataConfig(input=[str(root / "corpus.txt")], vocab=str(en_vocab), output=str(root / "shards"),
                        tasks=["knowledge_masking", "capitalization", "sentence_reordering"], max_seq_len=64,
                        shards=1, task_options={"knowledge_masking": {"masking": "offline"}},
                        stopwords=str(REPO / "configs/stopwords/en.txt")), progress=False)
    return root / "shards"


def _layout(data: bytes):
    (length,) = struct.unpack("<I", data[8:12])
    header = json.loads(data[_PREFIX:_PREFIX + length])
    return header, -(-(_PREFIX + length) // _ALIGN) * _ALIGN


def _read_all(path):
    for _ in Shard(path):
        pass


def _flipped(shard_dir, tmp_path, at: int):
    data = bytearray((shard_dir / "part-00000.shard").read_bytes())
    data[at] ^= 0x40
    path = tmp_path / "part-00000.shard"
    path.write_bytes(bytes(data))
    return path


def test_a_flip_in_the_header_is_caught_at_open(shard_dir, tmp_path):
    with pytest.raises(ShardError, match="part-00000.shard: corrupt shard header"):
        Shard(_flipped(shard_dir, tmp_path, _PREFIX + 5))


def test_a_shard_of_the_first_format_is_named_as_such_not_as_corrupt(shard_dir, tmp_path):
    """Format 1 wrote the header right after its length (no checksum field)."""
    clean = (shard_dir / "part-00000.shard").read_bytes()
    header, data_start = _layout(clean)
    raw = json.dumps({**header, "version": 1}).encode()
    path = tmp_path / "part-00000.shard"
    path.write_bytes(clean[:8] + struct.pack("<I", len(raw)) + raw + clean[data_start:])
    with pytest.raises(ShardError, match="part-00000.shard: shard format version 1, this reader knows 3: "
                                         "make the shards again"):
        Shard(path)


def test_a_flip_in_any_array_is_caught_before_its_example_is_used(shard_dir, tmp_path):
    clean = (shard_dir / "part-00000.shard").read_bytes()
    header, data_start = _layout(clean)
    assert header["block_bytes"] == 512 and len(header["block_crc32"]) > 8 * 20
    offsets = np.frombuffer(clean, np.int64, header["examples"] + 1,
                            data_start + header["arrays"]["token_offsets"]["offset"])
    per_token = ("src_ids", "sent_ids", *(f["name"] for t in header["tasks"].values() for f in t["fields"]
                                          if f["per"] == "token"))
    for name, spec in header["arrays"].items():
        if not spec["nbytes"]:
            continue
        item = spec["nbytes"] // 2 // np.dtype(spec["dtype"]).itemsize
        path = _flipped(shard_dir, tmp_path, data_start + spec["offset"] + item * np.dtype(spec["dtype"]).itemsize)
        # the example that holds the flipped item
        holder = int(np.searchsorted(offsets, item, side="right") - 1) if name in per_token else item
        used = []
        with pytest.raises(ShardError, match=r"part-00000.shard: corrupt shard: bytes \d+-\d+ fail their checksum"):
            shard = Shard(path)
            for i in range(len(shard)):
                shard[i]
                used.append(i)
        if name in (*per_token, "task", "label", "token_tasks"):
            assert holder not in used, name


def test_a_flip_in_the_padding_is_caught(shard_dir, tmp_path):
    clean = (shard_dir / "part-00000.shard").read_bytes()
    header, data_start = _layout(clean)
    gaps = [spec["offset"] + spec["nbytes"] for spec in header["arrays"].values() if spec["nbytes"] % _ALIGN]
    with pytest.raises(ShardError, match="fail their checksum"):
        _read_all(_flipped(shard_dir, tmp_path, data_start + gaps[0]))


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_a_truncated_shard_is_caught_at_open(shard_dir, tmp_path, keep):
    data = (shard_dir / "part-00000.shard").read_bytes()
    path = tmp_path / "part-00000.shard"
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(ShardError, match="truncated"):
        Shard(path)


def _pretrain(shard_dir, tmp_path, **extra):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(dict(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, use_task_id=True, task_type_vocab_size=8)))
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(dict(
        model=str(tmp_path / "model.yaml"), data=str(shard_dir), output=str(tmp_path / "run"), batch_tokens=1024,
        log_every=5, checkpoint_every=1000, optimization={"warmup_steps": 2},
        schedule={"strategy": "continual", "stages": [["knowledge_masking"]], "iterations_per_task": 40}, **extra)))
    return subprocess.run([sys.executable, "-m", "ernie.pretrain", "--config", str(tmp_path / "pretrain.yaml"),
                           "--quiet"], capture_output=True, text=True, cwd=REPO)


def test_training_stops_with_the_error_or_skips_and_counts(shard_dir, tmp_path):
    clean = (shard_dir / "part-00000.shard").read_bytes()
    header, data_start = _layout(clean)
    spec = header["arrays"]["src_ids"]
    corrupt = tmp_path / "shards"
    corrupt.mkdir()
    (corrupt / "manifest.json").write_bytes((shard_dir / "manifest.json").read_bytes())
    data = bytearray(clean)
    # a token id in the middle of the token array (a block that holds no per-example array, which
    # the reader checks whole when it opens the shards)
    data[data_start + spec["offset"] + spec["nbytes"] // 2] ^= 0x40
    (corrupt / "part-00000.shard").write_bytes(bytes(data))
    stopped = _pretrain(corrupt, tmp_path / "a")
    assert stopped.returncode == 2 and "Traceback" not in stopped.stderr
    assert "part-00000.shard: corrupt shard: bytes" in stopped.stderr
    skipped = _pretrain(corrupt, tmp_path / "b", corrupt_shards="skip")
    assert skipped.returncode == 0, skipped.stderr[-2000:]
    summary = json.loads((tmp_path / "b" / "run" / "summary.json").read_text())
    assert summary["corrupt_examples_skipped"] > 0


def _reader(shard_dir, **extra):
    from ernie.pretrain.data import PretrainingData
    return PretrainingData(shard_dir, seed=1, batch_tokens=256, pad_id=0, mask_token_id=3, first_normal_id=5, **extra)


def test_shards_that_do_not_divide_among_the_ranks_are_refused(tmp_path, en_vocab):
    """4 shards among 8 ranks (half would read all of them) or 3: refused before training;
    among 2 or 4 each shard is read by exactly one rank."""
    root = tmp_path
    (root / "corpus.txt").write_text("".join("".join(doc) + "\n" for doc in _documents(4, 30)), encoding="utf-8")
    make(DataConfig(input=[str(root / "corpus.txt")], vocab=str(en_vocab), output=str(root / "shards"),
                    tasks=["knowledge_masking"], max_seq_len=64, shards=4,
                    stopwords=str(REPO / "configs/stopwords/en.txt")), progress=False)
    for world_size in (8, 3):
        with pytest.raises(ShardError, match=rf"4 shards cannot be divided evenly among {world_size} ranks"):
            _reader(root / "shards", rank=0, world_size=world_size)
    for world_size in (2, 4):
        read = [sorted(s.path.name for s in _reader(root / "shards", rank=r, world_size=world_size).shards)
                for r in range(world_size)]
        every = [name for names in read for name in names]
        assert sorted(every) == sorted(set(every)) and len(every) == 4


def test_shards_the_manifest_does_not_describe_are_refused(shard_dir, tmp_path):
    """A `make` stopped after its new shards were renamed into place but before their manifest."""
    copy = tmp_path / "shards"
    copy.mkdir()
    for path in shard_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    manifest = json.loads((copy / "manifest.json").read_text())
    _reader(copy)  # as made: accepted
    manifest["shards"][0]["examples"] += 52
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match=r"part-00000.shard holds \d+ examples, its manifest.json \d+"):
        _reader(copy)


def test_a_make_stopped_while_replacing_shards_leaves_no_manifest(shard_dir, tmp_path, en_vocab, monkeypatch):
    config = dict(vocab=str(en_vocab), output=str(tmp_path / "shards"), tasks=["knowledge_masking"], max_seq_len=64,
                  shards=1, stopwords=str(REPO / "configs/stopwords/en.txt"))
    (tmp_path / "a.txt").write_text("".join("".join(doc) + "\n" for doc in _documents(4, 30)), encoding="utf-8")
    make(DataConfig(input=[str(tmp_path / "a.txt")], **config), progress=False)
    (tmp_path / "b.txt").write_text("".join("".join(doc) + "\n" for doc in _documents(2, 10)), encoding="utf-8")

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("data_gen.make.unigram_counts", stopped)  # after the renames, before the manifest
    with pytest.raises(KeyboardInterrupt):
        make(DataConfig(input=[str(tmp_path / "b.txt")], **config), progress=False)
    assert not (tmp_path / "shards" / "manifest.json").exists()


def test_a_killed_writers_temporaries_go_when_the_file_is_written_again(tmp_path):
    """A process killed mid-write (a shard's scratch arrays, a checkpoint) left its temporaries
    beside the file, and no rerun removed them: gigabytes at a corpus's size. The next writer of
    the file removes those of this host's dead processes, not a running one's or another host's."""
    import socket

    from data_gen.shards import ShardWriter
    from ernie_common.fileio import atomic_directory, atomic_write_text
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    host = socket.gethostname()
    for name in ("part-00000.shard", "state.json", "step-00000010"):
        dead = tmp_path / f".{name}.{host}-{exited.pid}.abc123.tmp"
        dead.mkdir() if name != "state.json" else dead.write_text("half")
        (dead / "src_ids").write_bytes(b"\0" * 64) if dead.is_dir() else None
        for other in (f".{name}.{host}-{os.getpid()}.live.tmp", f".{name}.other-host-{exited.pid}.x.tmp"):
            (tmp_path / other).write_text("theirs")
    atomic_write_text(tmp_path / "state.json", "{}")
    with atomic_directory(tmp_path / "step-00000010") as tmp:
        (tmp / "params").write_text("p")
    ShardWriter(tmp_path / "part-00000.shard", {}, ())
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert not [n for n in left if f"-{exited.pid}.abc123" in n]
    assert len([n for n in left if n.endswith((".live.tmp", ".x.tmp"))]) == 6


def test_what_a_rename_publishes_is_on_disk_before_the_rename(tmp_path, monkeypatch):
    """Checkpoints were renamed into place, and `latest` pointed at them, with nothing flushed: a
    machine's crash soon after could leave `latest` naming empty parameter files. Every file and
    folder is flushed before the rename that publishes it, and the folder that holds it after."""
    from ernie_common.fileio import atomic_directory, atomic_write_text
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(dst)))
        real_replace(src, dst)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with atomic_directory(tmp_path / "step-00000010") as tmp:
        (tmp / "params.safetensors").write_bytes(b"p" * 64)
        (tmp / "optimizer").mkdir()
        (tmp / "optimizer" / "moments").write_bytes(b"m" * 64)
        temporary = tmp.name
    atomic_write_text(tmp_path / "latest", "step-00000010")
    flushed = [name for kind, name in events[:events.index(("replace", "step-00000010"))] if kind == "fsync"]
    assert sorted(flushed) == sorted(["params.safetensors", "optimizer", "moments", temporary])
    published = events.index(("replace", "step-00000010"))
    assert events[published + 1] == ("fsync", tmp_path.name)  # the rename kept (the folder alone)
    assert events[-3][0] == "fsync" and events[-3][1].startswith(".latest.")  # latest's bytes, then
    assert events[-2:] == [("replace", "latest"), ("fsync", tmp_path.name)]  # its rename, kept


def test_a_filesystem_that_cannot_flush_folders_still_takes_the_write(tmp_path, monkeypatch):
    """Some FUSE and CIFS mounts refuse fsync on a folder (EINVAL): a checkpoint already renamed
    into place was reported failed, and the trainer stopped."""
    import errno
    import stat

    from ernie_common.fileio import atomic_directory, atomic_write_text
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    with atomic_directory(tmp_path / "step-00000010") as tmp:
        (tmp / "params.safetensors").write_bytes(b"p")
    atomic_write_text(tmp_path / "latest", "step-00000010")
    assert (tmp_path / "latest").read_text() == "step-00000010"
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError, match="I/O error"):  # a file's bytes that did not reach the disk: an error
        atomic_write_text(tmp_path / "latest", "step-00000020")
    assert (tmp_path / "latest").read_text() == "step-00000010"
