"""Fused CPU kernels for training (`ernie/kernels/csrc/cpu_kernels.cc`), and the ops the models call:
each runs the fused kernel where it applies and Paddle's own op everywhere else.

They apply when the model trains on the CPU in float32 (or in bfloat16 mixed precision, whose
matrix products they run in bfloat16), and the kernels could be built. Eval
graphs, and so every exported model, keep Paddle's own ops; GPU builds with a GPU keep Paddle's
GPU kernels; `ERNIE_CPU_KERNELS=0` turns the fused kernels off.

Why: Paddle 3.3's CPU kernels for these ops are slow. Its dropout draws one std::mt19937 number
per element on one thread; its layer-norm and GELU backward kernels and its broadcast adds (the
attention mask, the bias gradients) are slow. Profiled on the tiny pre-training step
(benchmarks/bench_pretrain.py, 2 cores), they took 94, 53, 31 and 70 ms of a 653 ms step.
The matrix products: Paddle's matmul calls MKL, whose Intel OpenMP threads compete for the cores
with the kernels' GNU OpenMP ones; oneDNN's GEMM (Paddle ships it, built on GNU OpenMP) through
`matmul`/`linear` took the step on a Xeon with AMX from 458 to 366 ms, the linear layer's bias
added by the product itself included. The masked LM's cross entropy and accuracy read its
[positions, vocabulary] logits twice on one thread (15 and 13 ms); one threaded pass: 7 ms.
Attention's products read the heads in place, without Paddle's transposes (10 ms). With all of
them the step takes 337 ms against PyTorch's 364 ms on that Xeon.

Building: the first process on a machine compiles the kernels with Paddle's custom-operator
toolchain (g++ on Linux, about 20 s) into `$ERNIE_CACHE/cpu_kernels/<hash>/`, keyed by the
source, the Paddle and Python versions and the CPU's feature flags (the code is built for the
CPU it runs on); later processes only load the library. Processes starting together (the ranks
of a distributed job) build once, under a file lock. When the build fails, a warning says why
and training goes on with Paddle's own ops (in float32, bfloat16 mixed precision included).
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
from ernie_common.machine import cpu_flags, cpu_vendor
from propeller.mixed_precision import cpu_bf16_isa, cpu_bf16_matmuls, has_gpu

_SOURCES = tuple(Path(__file__).parent / "csrc" / name for name in ("cpu_kernels.cc", "cpu_adamw.cc"))
_LIBRARY = "ernie_cpu_kernels"
# -fno-math-errno: sqrt in a vectorised loop (no result changes; errno is never read)
_CXX_FLAGS = ("-O3", "-march=native", "-fopenmp", "-fno-math-errno")
_SWITCH = "ERNIE_CPU_KERNELS"

# Paddle's custom-operator toolchain, run in a child process so that its compiler log stays out
# of the caller's output and the library it loads there is not registered twice here.
_BUILD_SCRIPT = """
import sys
name, build_directory, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
from paddle.utils.cpp_extension import load
load(name=name, sources=sys.argv[4:4 + count], build_directory=build_directory,
     extra_cxx_cflags=sys.argv[4 + count:])
"""

_loaded: dict = {}


def _cxx_flags() -> tuple:
    """The compiler's flags: for the CPU it runs on, less AVX-512 where the CPU has it and this
    process may not use it (oneDNN capped below it: the kernels then run as on a CPU without it)."""
    hidden = "avx512f" in cpu_flags(capped=False) and "avx512f" not in cpu_flags()
    return _CXX_FLAGS + (("-mno-avx512f",) if hidden else ())


def _build_key() -> str:
    digest = hashlib.sha256()
    for source in _SOURCES:
        digest.update(source.read_bytes() + b"\0")
    for part in (paddle.__version__, sys.version, platform.machine(), *sorted(cpu_flags()), *_cxx_flags()):
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


def _build(target: Path, cxx_flags=None) -> None:
    """Compiles the kernels with `cxx_flags` into the library file `target`."""
    print(f"ernie: building the fused CPU kernels into {target.parent} (once per machine)", file=sys.stderr)
    cxx_flags = _cxx_flags() if cxx_flags is None else cxx_flags
    with tempfile.TemporaryDirectory(dir=target.parent) as build_dir:
        done = subprocess.run([sys.executable, "-c", _BUILD_SCRIPT, _LIBRARY, build_dir, str(len(_SOURCES)),
                               *map(str, _SOURCES), *cxx_flags],
                              capture_output=True, text=True)
        built = Path(build_dir) / _LIBRARY / f"{_LIBRARY}.so"
        if done.returncode != 0 or not built.exists():
            raise RuntimeError(f"compiling {', '.join(s.name for s in _SOURCES)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
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
                          f"(several times slower; matrix products in float32 even with --amp bf16): {exc}")
            _loaded["ok"] = False
    return _loaded["ok"]


def _on_cpu() -> bool:
    return not has_gpu() and not paddle.is_compiled_with_xpu()


def enabled() -> bool:
    """Whether the fused kernels run in this process: on the CPU, not switched off, built."""
    return os.environ.get(_SWITCH, "1") != "0" and _on_cpu() and available()


def _fused_applies(x, training: bool) -> bool:
    """Whether an op on `x` runs a fused kernel: training, `x` float32, the kernels `enabled`."""
    return training and x.dtype == paddle.float32 and enabled()


def auto_amp() -> tuple:
    """(amp, why) for `amp: auto`: bfloat16 matrix products where they pay, float32 elsewhere.

    Measured with benchmarks/bench_pretrain.py (2 cores; docs/benchmarks.md): on a Xeon with AMX
    the pre-training step is 1.47x (tiny model) and 2.23x (base) faster with bfloat16 products;
    on an AMD EPYC with AVX512_BF16 and no AMX (Zen 4) 1.33x and 1.73x; on the Xeon with oneDNN
    capped at AVX512_BF16 (the same dot-product instruction on an Intel core) 1.40x and 1.54x
    slower. The instruction is the same, the cores are not (likely: an Intel core's two 512-bit
    FMA units give float32 the rate its bfloat16 dot products have, which then only add
    conversions; a Zen 4 core's bfloat16 dot products double its float32 rate), so the decision
    takes the vendor. Losses within 2e-5 (tiny) and 7.5e-4 (base) of float32's over the
    benchmark's steps on both."""
    if not _on_cpu():
        return "off", "a GPU run names its precision (amp: fp16 or bf16)"
    isa = cpu_bf16_isa(cpu_flags())
    if isa is None:
        return "off", "this CPU has no bfloat16 instructions (AMX or AVX512_BF16)"
    if isa == "avx512_bf16" and cpu_vendor() != "AuthenticAMD":
        return "off", ("this CPU has AVX512_BF16 and no AMX, on a core that is not AMD's: bfloat16 products were "
                       "slower than float32 on such a core")
    if os.environ.get(_SWITCH, "1") == "0" or not available():
        return "off", "the fused CPU kernels, which run the bfloat16 products, are off or unavailable"
    if isa == "amx_bf16":
        return "bf16", "this CPU has AMX: matrix products in bfloat16, the rest float32"
    return "bf16", "this AMD CPU has AVX512_BF16: matrix products in bfloat16, the rest float32"


def run_op(op: str, *inputs_then_attributes):
    """Runs the custom op `op` of the fused kernels (built and loaded: `enabled`)."""
    return paddle._C_ops._run_custom_op(op, *inputs_then_attributes)


def training_program_pass():
    """`StaticRunner`'s `program_pass` for a training program: `fuse_gradient_sums` where the
    fused kernels run, else None."""
    return fuse_gradient_sums if enabled() else None


def fuse_gradient_sums(program, kept=()) -> int:
    """Replaces each sum of float32 gradients that the backward pass built with Paddle's add_n
    (a value used more than once: every residual's input, the tied word embedding) by the fused
    kernels' one-pass, multi-threaded sum, the same values to the bit; returns how many. Measured
    in the tiny model's step: add_n's 11 sums took 7% of it. A sum whose result is one of `kept`
    (values the caller fetches by reference) stays. Call inside the program's guard."""
    from paddle import pir
    block = program.global_block()
    fused = 0
    for op in list(block.ops):
        if op.name() != "pd_op.add_n" or any(op.result(0).is_same(v) for v in kept):
            continue
        combine = op.operand_source(0).get_defining_op()
        inputs = combine.operands_source()
        if not all(v.is_dense_tensor_type() and v.dtype == paddle.float32 for v in inputs):
            continue
        pir.set_insertion_point(op)
        total = run_op("ernie_sum", inputs)[0]
        op.result(0).replace_all_uses_with(total)
        block.remove_op(op)
        if combine.result(0).use_empty():
            block.remove_op(combine)
        fused += 1
    pir.set_insertion_point_to_block_end(block)
    return fused


def dropout(x, p: float, training: bool):
    """Dropout that scales kept values by 1 / (1 - p) in training (the original's upscale_in_train).

    The fused kernel draws its mask from Philox4x32-10 keyed by two numbers taken from Paddle's
    generator, so `paddle.seed` fixes it as it fixes Paddle's own dropout. In a static program,
    Paddle's own dropout (a GPU's) is seeded by a number drawn the same way, on the CPU: a GPU's
    dropout kernel reads a seed tensor on the host as it is (its registration takes the seed
    from any backend), and one on the device it would copy to the host, waiting for the stream,
    at every dropout of every step. Either way the mask is a function of a `randint` op's
    output, which activation recomputation keeps (`propeller.recompute`): the recomputed dropout
    applies the forward's mask."""
    if not training or p == 0:
        return x
    if not _fused_applies(x, training):
        if not paddle.in_dynamic_mode():
            seed = paddle._C_ops.randint(0, 2 ** 31 - 1, [1], paddle.int32, paddle.CPUPlace())
            return paddle._C_ops.dropout(x, seed, float(p), False, "upscale_in_train", 0, False)
        return F.dropout(x, p, training=True, mode="upscale_in_train")
    key = paddle.randint(0, 2 ** 31 - 1, [2], dtype="int64")
    return run_op("ernie_dropout", x, key, float(p))[0]


def layer_norm(x, weight, bias, epsilon: float, training: bool):
    """Layer norm over the last axis."""
    if not _fused_applies(x, training):
        return F.layer_norm(x, x.shape[-1:], weight, bias, epsilon)
    return run_op("ernie_layer_norm", x, weight, bias, float(epsilon))[0]


def gelu(x, training: bool):
    """GELU, exact (erf) form, as the original ERNIE."""
    if not _fused_applies(x, training):
        return F.gelu(x)
    return run_op("ernie_gelu", x)[0]


def masked_softmax(scores, bias, training: bool):
    """`softmax(scores + bias)` over the last axis; scores [B, heads, T, T], bias [B, 1, 1, T]."""
    if not _fused_applies(scores, training):
        return F.softmax(scores + bias, axis=-1)
    return run_op("ernie_masked_softmax", scores, bias)[0]


def matmul(x, y, transpose_y: bool, training: bool):
    """`x @ y`, or `x @ y^T`; `y` a weight [K, N] or a batch with `x`'s leading dimensions. Under
    bfloat16 mixed precision on a CPU (`propeller.mixed_precision.cpu_bf16_matmuls`) the product
    runs in bfloat16 with float32 accumulation, forward and backward, float32 in and out."""
    if not _fused_applies(x, training):
        return paddle.matmul(x, y, transpose_y=transpose_y)
    return run_op("ernie_matmul", x, y, bool(transpose_y), cpu_bf16_matmuls())[0]


def _split_heads(x, heads: int):
    """[B, T, heads x d] -> [B, heads, T, d]."""
    return paddle.transpose(paddle.reshape(x, [0, 0, heads, x.shape[-1] // heads]), [0, 2, 1, 3])


def attention_scores(q, k, heads: int, training: bool):
    """Every head's `q_h @ k_h^T`: q, k [B, T, heads x d] -> [B, heads, T, T]. The fused kernel
    reads each head where the projection wrote it, with no transpose; products as `matmul`'s."""
    if not _fused_applies(q, training):
        return paddle.matmul(_split_heads(q, heads), _split_heads(k, heads), transpose_y=True)
    return run_op("ernie_attention_scores", q, k, int(heads), cpu_bf16_matmuls())[0]


def attention_context(probs, v, heads: int, training: bool):
    """Every head's `probs_h @ v_h`, the heads side by side again: probs [B, heads, T, T], v
    [B, T, heads x d] -> [B, T, heads x d]."""
    if not _fused_applies(probs, training):
        context = paddle.transpose(paddle.matmul(probs, _split_heads(v, heads)), [0, 2, 1, 3])
        return paddle.reshape(context, [0, 0, v.shape[-1]])
    return run_op("ernie_attention_context", probs, v, int(heads), cpu_bf16_matmuls())[0]


def linear(x, weight, bias: Optional[paddle.Tensor], training: bool):
    """`x @ weight + bias`, in one kernel: the product added onto the bias, the bias gradient a
    threaded column sum; its product in bfloat16 as `matmul`'s."""
    if bias is None or not _fused_applies(x, training):
        return F.linear(x, weight, bias)
    return run_op("ernie_linear", x, weight, bias, cpu_bf16_matmuls())[0]


def softmax_cross_entropy(logits, labels, training: bool):
    """Per row of `logits` [..., C] with `labels` [...] (int64, -1: none): the cross entropy and
    whether the first maximum is the label (float 1/0), both 0 where there is no label."""
    if not _fused_applies(logits, training):
        safe = paddle.where(labels != -1, labels, paddle.zeros_like(labels))
        valid = paddle.cast(labels != -1, logits.dtype)
        loss = F.cross_entropy(logits, safe.unsqueeze(-1), reduction="none").squeeze(-1) * valid
        return loss, paddle.cast(paddle.argmax(logits, axis=-1) == safe, logits.dtype) * valid
    loss, correct, _ = run_op("ernie_softmax_xent", logits, labels)
    return loss, correct


def bias_add(x, bias, training: bool):
    """`x + bias`, the bias broadcast over the last axis."""
    if not _fused_applies(x, training):
        return x + bias
    return run_op("ernie_bias_add", x, bias)[0]
