"""Fused CPU kernels for training (`ernie/kernels/csrc/cpu_kernels.cc`), and the ops the models call:
each runs the fused kernel where it applies and Paddle's own op everywhere else.

They apply when the model trains on the CPU, in float32 or in bfloat16 mixed precision (where
they take the matrix products' outputs back to float32), and the kernels could be built. Eval
graphs, and so every exported model, keep Paddle's own ops; GPU builds with a GPU keep Paddle's
GPU kernels; `ERNIE_CPU_KERNELS=0` turns the fused kernels off.

Why: Paddle 3.3's CPU kernels for these ops are slow. Its dropout draws one std::mt19937 number
per element on one thread; its layer-norm and GELU backward kernels and its broadcast adds (the
attention mask, the bias gradients) are slow. Profiled on the tiny pre-training step
(benchmarks/bench_pretrain.py, 2 cores), they took 94, 53, 31 and 70 ms of a 653 ms step.
With the fused kernels the step takes 448 ms.

Building: the first process on a machine compiles the kernels with Paddle's custom-operator
toolchain (g++ on Linux, about 20 s) into `$ERNIE_CACHE/cpu_kernels/<hash>/`, keyed by the
source, the Paddle and Python versions and the CPU's feature flags (the code is built for the
CPU it runs on); later processes only load the library. Processes starting together (the ranks
of a distributed job) build once, under a file lock. When the build fails, a warning says why
and training goes on with Paddle's own ops.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Optional

import paddle
import paddle.nn.functional as F

from ernie_common.fileio import atomic_path, cache_dir
from propeller.mixed_precision import has_gpu

_SOURCE = Path(__file__).parent / "csrc" / "cpu_kernels.cc"
_LIBRARY = "ernie_cpu_kernels"
_CXX_FLAGS = ("-O3", "-march=native", "-fopenmp")
_SWITCH = "ERNIE_CPU_KERNELS"

# Paddle's custom-operator toolchain, run in a child process so that its compiler log stays out
# of the caller's output and the library it loads there is not registered twice here.
_BUILD_SCRIPT = """
import sys
from paddle.utils.cpp_extension import load
load(name=sys.argv[1], sources=[sys.argv[2]], build_directory=sys.argv[3], extra_cxx_cflags=sys.argv[4:])
"""

_loaded: dict = {}


def _cpu_flags() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    return platform.processor()


def _build_key() -> str:
    digest = hashlib.sha256(_SOURCE.read_bytes())
    for part in (paddle.__version__, sys.version, platform.machine(), _cpu_flags(), *_CXX_FLAGS):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, concurrent builds just race to the same rename
        yield
        return
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build(target: Path, cxx_flags=_CXX_FLAGS) -> None:
    """Compiles the kernels with `cxx_flags` into the library file `target`."""
    print(f"ernie: building the fused CPU kernels into {target.parent} (once per machine)", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=target.parent) as build_dir:
        done = subprocess.run([sys.executable, "-c", _BUILD_SCRIPT, _LIBRARY, str(_SOURCE), build_dir, *cxx_flags],
                              capture_output=True, text=True)
        built = Path(build_dir) / _LIBRARY / f"{_LIBRARY}.so"
        if done.returncode != 0 or not built.exists():
            raise RuntimeError(f"compiling {_SOURCE.name} failed:\n{(done.stdout + done.stderr)[-3000:]}")
        with atomic_path(target) as tmp:
            shutil.copyfile(built, tmp)


def _load() -> None:
    target = cache_dir() / "cpu_kernels" / _build_key() / f"{_LIBRARY}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(target.parent / ".lock"):
            if not target.exists():
                _build(target)
    paddle.utils.cpp_extension.load_op_meta_info_and_register_op(str(target))


def available() -> bool:
    """Whether the fused kernels are built and loaded in this process (building them if needed)."""
    if "ok" not in _loaded:
        try:
            _load()
            _loaded["ok"] = True
        except Exception as exc:  # no compiler, a failed build, a library that does not load
            warnings.warn(f"ernie: fused CPU kernels unavailable, training uses Paddle's own CPU ops "
                          f"(several times slower): {exc}")
            _loaded["ok"] = False
    return _loaded["ok"]


def _on_cpu() -> bool:
    return not has_gpu() and not paddle.is_compiled_with_xpu()


def _fused_applies(x, training: bool) -> bool:
    """Whether an op on `x` runs a fused kernel: training, on the CPU, not switched off, `x`
    float32 or bfloat16 (see `_float32`)."""
    return (training and x.dtype in (paddle.float32, paddle.bfloat16) and os.environ.get(_SWITCH, "1") != "0"
            and _on_cpu() and available())


def _float32(x):
    """The kernels are float32. In bfloat16 mixed-precision training (`--amp bf16`) a matrix
    product hands them a bfloat16 activation, which goes back to float32 here: only the matrix
    products run in bfloat16 (oneDNN's kernels for them are the fast part), and everything between
    them keeps the fused float32 kernels."""
    return x if x.dtype == paddle.float32 else paddle.cast(x, "float32")


def _run(op: str, *inputs_then_attributes):
    return paddle._C_ops._run_custom_op(op, *inputs_then_attributes)


def dropout(x, p: float, training: bool):
    """Dropout that scales kept values by 1 / (1 - p) in training (the original's upscale_in_train).

    The fused kernel draws its mask from Philox4x32-10 keyed by two numbers taken from Paddle's
    generator, so `paddle.seed` fixes it as it fixes Paddle's own dropout. In a static program,
    Paddle's own dropout (a GPU's) is seeded by a number drawn the same way. Either way the mask
    is a function of a `randint` op's output, which activation recomputation keeps
    (`propeller.recompute`): the recomputed dropout applies the forward's mask."""
    if not training or p == 0:
        return x
    if not _fused_applies(x, training):
        if not paddle.in_dynamic_mode():
            seed = paddle.randint(0, 2 ** 31 - 1, [1], dtype="int32")
            return paddle._C_ops.dropout(x, seed, float(p), False, "upscale_in_train", 0, False)
        return F.dropout(x, p, training=True, mode="upscale_in_train")
    key = paddle.randint(0, 2 ** 31 - 1, [2], dtype="int64")
    return _run("ernie_dropout", _float32(x), key, float(p))[0]


def layer_norm(x, weight, bias, epsilon: float, training: bool):
    """Layer norm over the last axis."""
    if not _fused_applies(x, training):
        return F.layer_norm(x, x.shape[-1:], weight, bias, epsilon)
    return _run("ernie_layer_norm", _float32(x), weight, bias, float(epsilon))[0]


def gelu(x, training: bool):
    """GELU, exact (erf) form, as the original ERNIE."""
    if not _fused_applies(x, training):
        return F.gelu(x)
    return _run("ernie_gelu", _float32(x))[0]


def masked_softmax(scores, bias, training: bool):
    """`softmax(scores + bias)` over the last axis; scores [B, heads, T, T], bias [B, 1, 1, T]."""
    if not _fused_applies(scores, training):
        return F.softmax(scores + bias, axis=-1)
    return _run("ernie_masked_softmax", _float32(scores), bias)[0]


def linear(x, weight, bias: Optional[paddle.Tensor], training: bool):
    """`x @ weight + bias`; the fused bias add gets the bias gradient as a threaded column sum."""
    if bias is None or not _fused_applies(x, training):
        return F.linear(x, weight, bias)
    return bias_add(paddle.matmul(x, weight), bias, training)


def bias_add(x, bias, training: bool):
    """`x + bias`, the bias broadcast over the last axis."""
    if not _fused_applies(x, training):
        return x + bias
    return _run("ernie_bias_add", _float32(x), bias)[0]
