"""Files: writes that never leave a half-written file behind (write to a temporary name, then
rename), the cache directory, and SHA-256 of a file."""
from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Optional


def cache_dir() -> Path:
    """Where downloads and built kernels are kept: `$ERNIE_CACHE`, else `~/.cache/ernie2`."""
    return Path(os.environ.get("ERNIE_CACHE", Path.home() / ".cache" / "ernie2"))


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _default_mode(directory: bool) -> int:
    """What a plain open()/mkdir() would give under this process's umask (mkstemp gives 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


class OutputDirError(Exception):
    """A directory a tool was told to write that it may not replace: it is or holds the tool's
    input, or it holds files the new output would not write again (a user's own); or a
    directory where a file is to be written."""


def temporary_prefix(path: Path) -> str:
    """The name a temporary file or directory for `path` starts with, beside it: the host and
    process that write it, so that a later writer of `path` knows one left by a killed process
    (`remove_dead_temporaries`)."""
    return f".{path.name}.{socket.gethostname()}-{os.getpid()}."


def remove_dead_temporaries(path: Path) -> None:
    """Removes the temporaries of `path` that a process of this host, no longer running, left
    when it was killed mid-write (a checkpoint, a shard's scratch arrays: at a corpus's size,
    gigabytes no rerun removed). Another host's, on a shared disk, are left: its process may run."""
    path = Path(path)
    mine = f".{path.name}.{socket.gethostname()}-"
    for entry in path.parent.glob(glob.escape(mine) + "*"):
        pid = entry.name[len(mine):].split(".", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it onto `path` only if the block succeeds."""
    path = Path(path)
    if path.is_dir():  # (the rename would fail after the block's work)
        raise OutputDirError(f"{path} is a directory, where a file is written: name the file")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _default_mode(directory=False))
    try:
        yield Path(tmp)
        _durable(Path(tmp))
        os.replace(tmp, path)
        _flush(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _durable(path: Path) -> None:
    """Flushes a file, or a folder with everything under it, to the disk. A rename publishes
    what it names (a checkpoint's folder, then `latest` naming it): without the flush, a crash of
    the machine soon after could leave the rename on disk and the files' bytes not (empty or cut
    parameters under a `latest` that names them). The folder holding it is flushed after the
    rename (`_flush`), which keeps the rename."""
    for item in ([path] if not path.is_dir() else [*sorted(path.rglob("*")), path]):
        if not item.is_symlink():
            _flush(item)


def _flush(item: Path) -> None:
    """One file's or folder's own bytes and entries to the disk. A filesystem that cannot flush a
    folder (some FUSE and CIFS mounts refuse it) leaves it to its own pace: the write stands."""
    fd = os.open(item, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as err:
        if not (item.is_dir() and err.errno in (errno.EINVAL, errno.ENOTSUP, errno.EBADF)):
            raise
    finally:
        os.close(fd)


def atomic_write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def file_above(path) -> Optional[Path]:
    """The first folder of `path` that is a file, or None: a write there fails, after the work."""
    return next((parent for parent in Path(path).parents if parent.exists() and not parent.is_dir()), None)


def make_output_dir(path, what: str = "output") -> Path:
    """`path` made as a directory with its parents, or OutputDirError saying why it cannot be
    (no permission, a full disk, a file where a folder of it should be)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputDirError(f"{what} {path}: cannot create it ({err.strerror or err})") from None
    return path


def check_output_is_not_input(output, source) -> None:
    """Refuses an output directory that is the input directory or holds it: replacing it would
    delete the input."""
    output, source = Path(output).resolve(), Path(source).resolve()
    if output == source or output in source.parents:
        raise OutputDirError(f"{output} {'is' if output == source else 'holds'} the input {source}: writing it "
                             f"would delete the input; choose another output directory")


def _refuse_foreign(path: Path, new: Path) -> None:
    if not path.is_dir():
        raise OutputDirError(f"{path} is a file, not a directory: left as it is; choose another output directory")
    foreign = sorted(set(os.listdir(path)) - set(os.listdir(new)))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise OutputDirError(f"{path} holds {shown}, which this output does not write: left as it is; "
                             f"choose a new or empty directory, or remove it first")


@contextlib.contextmanager
def atomic_directory(path, only_own: bool = False):
    """Yields a temporary directory beside `path`; it replaces `path` only if the block succeeds.
    With `only_own` (tools that write where a user says), an existing `path` is replaced only if
    each of its entries is one the new directory has (an earlier output of the same kind);
    otherwise OutputDirError, and nothing is changed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=temporary_prefix(path), suffix=".tmp", dir=path.parent))
    os.chmod(tmp, _default_mode(directory=True))
    try:
        yield tmp
        if only_own and path.exists():
            _refuse_foreign(path, tmp)
        _durable(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _flush(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
