"""Virtual environments for the real consumers whose pins cannot live beside this project's own
requirements (PaddleNLP 2.8.1 and PaddleHub 2.4.0 want huggingface_hub<0.26; transformers 5 wants 1.x).

`python_of(name)` creates the environment once, from the pins in `ENVIRONMENTS`, under
`$ERNIE_TEST_ENVS` (default `~/.cache/ernie-framework/test-envs`), and reuses it while its pins
are unchanged; concurrent test processes wait on a lock. Creating it takes minutes (about 1.8 GB
installed; see docs/install.md for the time measured), once per machine.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ENVIRONMENTS = {
    # PaddleNLP 2.8.1 and PaddleHub 2.4.0 import under Paddle 3.3.1 only with these pins, and
    # PaddleHub's generated protobuf code only with PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python
    "paddle-consumers": ["paddlepaddle==3.3.1", "paddlenlp==2.8.1", "paddlehub==2.4.0", "huggingface_hub<0.26",
                         "aistudio-sdk==0.2.6", "datasets<3"],
}


def _root() -> Path:
    return Path(os.environ.get("ERNIE_TEST_ENVS", Path.home() / ".cache" / "ernie-framework" / "test-envs"))


def python_of(name: str) -> Path:
    """The interpreter of environment `name`, created first if it is missing or its pins changed."""
    pins = ENVIRONMENTS[name]
    key = hashlib.sha256(json.dumps(pins).encode()).hexdigest()[:12]
    env = _root() / f"{name}-{key}"
    python = env / "bin" / "python"
    env.parent.mkdir(parents=True, exist_ok=True)
    with open(env.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (env / "complete").is_file():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
            result = subprocess.run([str(python), "-m", "pip", "install", "-q", *pins],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"could not create the {name} test environment: {result.stderr[-2000:]}")
            (env / "complete").write_text("\n".join(pins) + "\n")
    return python


def run_in(name: str, script: str, *args: str, timeout: int = 600) -> str:
    """Runs `script` (Python source) with environment `name`'s interpreter; returns its stdout."""
    env = {**os.environ, "PYTHONPATH": "", "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python",
           "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as cwd:  # not the repository: its packages must not be importable
        result = subprocess.run([str(python_of(name)), "-c", script, *args], capture_output=True, text=True,
                                timeout=timeout, env=env, cwd=cwd)
    if result.returncode != 0:
        raise AssertionError(f"the {name} script failed:\n{result.stderr[-3000:]}")
    return result.stdout
