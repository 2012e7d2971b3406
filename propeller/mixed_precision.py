"""Mixed-precision training for the static runner, with Paddle's own machinery.

- O1 auto-cast: the ops on Paddle's white list (matmul and its kin) run in float16 or bfloat16;
  everything else, and the master weights the optimizer updates, stay float32.
- float16 adds dynamic loss scaling: the loss is multiplied by a scale before the backward
  pass; a step whose gradients hold an inf or nan is skipped (parameters and Adam moments stay
  as they were), and after `decr_every_n_nan_or_inf` such steps the scale is multiplied by
  `decr_ratio`; after `incr_every_n_steps` clean steps in a row it is multiplied by
  `incr_ratio`. The scale and its two counters are persistable program variables, so the
  runner's state (and so every checkpoint) holds them beside the optimizer's accumulators.
- bfloat16 has float32's exponent range and needs no loss scaling (none is built).
- bfloat16 on a CPU is not Paddle's auto-cast: Paddle 3.3's CPU build has no bfloat16 matmul
  kernel, so O1 there keeps every matrix product in float32 and only adds casts (2.4x slower
  than float32, measured on an AMX Xeon). Instead the model is built under `cpu_bf16_matmuls()`,
  and its matrix products (`ernie.kernels.cpu_kernels.matmul`) run in bfloat16 through oneDNN,
  float32 in and out: nothing else changes, master weights and optimizer included.

Kernels decide where each runs: float16 needs a CUDA build with a GPU; bfloat16 a GPU that
has it or a CPU with bfloat16 matrix instructions (AMX or AVX512_BF16; `cpu_bf16_isa` of the
flags the caller reads).
`check_supported` says so before anything is built. The settings (`AMP_CHOICES`, `LossScaling`, `MixedPrecision`) import without
Paddle, so a config can be checked in a process that never loads it.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Collection, Optional

if TYPE_CHECKING:
    import paddle

AMP_CHOICES = ("off", "fp16", "bf16", "auto")  # auto: decided by the caller (ernie.kernels.cpu_kernels.auto_amp)
_DTYPES = {"fp16": "float16", "bf16": "bfloat16"}
LOSS_SCALE_PREFIX = "loss_scaling"


class MixedPrecisionUnsupported(RuntimeError):
    pass


@dataclass(frozen=True)
class LossScaling:
    """Dynamic loss scaling settings (float16). The defaults are the original ERNIE's
    pre-training defaults (`ernie/pretrain_args.py` of PaddlePaddle/ERNIE: initial scale 102400,
    x2 after 100 clean steps, x0.8 after 2 overflowing ones). Paddle's GradScaler acts on the n-th
    such step in a row, the original's own code on the (n+1)-th (docs/pretraining-guide.md,
    "Mixed precision")."""
    init: float = 102400.0
    incr_every_n_steps: int = 100
    decr_every_n_nan_or_inf: int = 2
    incr_ratio: float = 2.0
    decr_ratio: float = 0.8

    def __post_init__(self):
        # Paddle's GradScaler asserts the ratios (a bare AssertionError while the program is built),
        # and its kernel compares the step counters with ==: a count below 1 would freeze the scale
        if not math.isfinite(self.init) or self.init <= 0:
            raise ValueError(f"init must be a positive number, got {self.init}")
        for name in ("incr_every_n_steps", "decr_every_n_nan_or_inf"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.incr_ratio > 1.0:
            raise ValueError(f"incr_ratio must be above 1, got {self.incr_ratio}")
        if not 0.0 < self.decr_ratio < 1.0:
            raise ValueError(f"decr_ratio must be in (0, 1), got {self.decr_ratio}")


@dataclass(frozen=True)
class MixedPrecision:
    amp: str  # "fp16" or "bf16"
    loss_scaling: LossScaling = field(default_factory=LossScaling)

    @property
    def dtype(self) -> str:
        return _DTYPES[self.amp]


def has_gpu() -> bool:
    from .device import cuda_device_count
    return cuda_device_count() > 0


def cpu_bf16_isa(cpu_flags: Collection[str]) -> Optional[str]:
    """The bfloat16 matrix instructions among a CPU's feature flags (/proc/cpuinfo's): "amx_bf16"
    (AMX tiles), "avx512_bf16" (dot products in AVX-512 registers) or None."""
    return next((isa for isa in ("amx_bf16", "avx512_bf16") if isa in cpu_flags), None)


def check_supported(amp: str, cpu_flags: Collection[str] = ()) -> None:
    """Raises `MixedPrecisionUnsupported`, saying why and what to use, where `amp` cannot run;
    `cpu_flags`: the CPU's feature flags, which decide bfloat16 on a CPU."""
    if amp not in AMP_CHOICES or amp == "auto":
        raise MixedPrecisionUnsupported(f"amp must be one of {AMP_CHOICES[:3]}, got {amp!r}")
    if amp == "off":
        return
    import paddle
    if has_gpu():
        if amp == "bf16" and not paddle.amp.is_bfloat16_supported():
            raise MixedPrecisionUnsupported("--amp bf16: this GPU has no bfloat16 support; use --amp fp16")
        return
    if amp == "fp16":
        raise MixedPrecisionUnsupported(
            "--amp fp16 needs a CUDA build of Paddle and a GPU (float16 matmul, softmax and layer norm "
            "have no CPU kernels); this process has none: use --amp off, or --amp bf16 on a CPU with AMX or AVX512_BF16")
    if cpu_bf16_isa(cpu_flags) is None:
        raise MixedPrecisionUnsupported(
            "--amp bf16 on a CPU needs bfloat16 matrix instructions (AMX or AVX512_BF16), which this CPU lacks: "
            "use --amp off")


_CPU_BF16_MATMULS = contextvars.ContextVar("cpu_bf16_matmuls", default=False)


def cpu_bf16_matmuls() -> bool:
    """Whether the model being built runs its matrix products in bfloat16 on the CPU (asked by the
    model's ops, `ernie.kernels.cpu_kernels.matmul`)."""
    return _CPU_BF16_MATMULS.get()


@contextlib.contextmanager
def autocast(dtype: Optional[str]):
    """The context a model is built in for mixed precision `dtype` ("float16", "bfloat16" or
    None): bfloat16 on a CPU is the model's own bfloat16 matrix products; everything else is
    Paddle's O1 auto-cast."""
    if dtype is None:
        yield
    elif dtype == "bfloat16" and not has_gpu():
        token = _CPU_BF16_MATMULS.set(True)
        try:
            yield
        finally:
            _CPU_BF16_MATMULS.reset(token)
    else:
        import paddle
        with paddle.amp.auto_cast(level="O1", dtype=dtype):
            yield


def _reduce_after_backward(optimizer, reduce_gradients: Callable) -> None:
    """Makes `optimizer.minimize` pass its gradients through `reduce_gradients` between the
    backward pass and the update. Paddle's optimizers, plain or decorated for mixed precision,
    all compute their gradients in `backward()`, so wrapping that one method puts the reduction
    before everything the update does with them: the inf/nan check of loss scaling (every rank
    then sees the same overflow and skips the same steps), clipping and weight decay."""
    backward = optimizer.backward

    def reduced_backward(*args, **kwargs):
        return reduce_gradients(backward(*args, **kwargs))

    optimizer.backward = reduced_backward


def _gradient_pipeline(optimizer, reduce_gradients: Optional[Callable], accumulate: int, accumulators: list,
                       recompute: bool, check: bool) -> None:
    """Backward (its ops tagged as such for recomputation; a non-finite loss poisoning its
    gradient, `propeller.nonfinite`), then the accumulated micro-batches' gradients added
    (`propeller.accumulation`), then the ranks' reduction: what the update sees is the global
    batch's gradient. With `check`, a last check of that gradient makes the update skip a
    non-finite step (float16's decorator does its own)."""
    from .nonfinite import poison_in_backward, skip_on_nonfinite
    if recompute:
        from .recompute import tag_backward
        tag_backward(optimizer)
    poison_in_backward(optimizer)
    if accumulate > 1:
        from .accumulation import accumulate_in_backward
        accumulate_in_backward(optimizer, accumulate, accumulators)
    if reduce_gradients is not None:
        _reduce_after_backward(optimizer, reduce_gradients)
    if check:
        skip_on_nonfinite(optimizer)


def minimize(model_fn, optimizer: paddle.optimizer.Optimizer, mixed_precision: Optional[MixedPrecision],
             reduce_gradients: Optional[Callable] = None, accumulate: int = 1, recompute: bool = False):
    """Builds the model under auto-cast and appends backward and optimizer ops; returns the
    model function's feeds and fetches, the gradient accumulators (none unless `accumulate`
    > 1: then the update uses the accumulated gradients of `accumulate` micro-batches and sets
    the accumulators back to zero) and the flag of a skipped update (`propeller.nonfinite`;
    None where the optimizer cannot skip). `reduce_gradients([(param, grad)]) -> [(param, grad)]`
    (data parallelism's all-reduce) runs on the gradients before the update. `recompute`: the
    segments the model marked are recomputed in the backward pass (`propeller.recompute`).
    Call inside a program guard."""
    import paddle

    from . import recompute as rc
    from .accumulation import reset
    accumulators: list = []
    build = model_fn
    if recompute:
        def build():
            with rc.forward_role():
                return model_fn()
    feeds, fetches, skipped = _minimize(build, optimizer, mixed_precision, reduce_gradients, accumulate,
                                        accumulators, recompute)
    if recompute:
        rc.apply(paddle.static.default_main_program())
    reset(accumulators)
    return feeds, fetches, accumulators, skipped


def _minimize(model_fn, optimizer, mixed_precision, reduce_gradients, accumulate, accumulators, recompute):
    import paddle

    from .nonfinite import supports_skip, update_flag
    skip = supports_skip(optimizer)
    if mixed_precision is None:
        _gradient_pipeline(optimizer, reduce_gradients, accumulate, accumulators, recompute, skip)
        feeds, fetches, loss = model_fn()
        optimizer.minimize(loss)
        return feeds, fetches, update_flag(optimizer) if skip else None
    dtype, scaling = mixed_precision.dtype, mixed_precision.loss_scaling
    if dtype == "bfloat16" and not has_gpu():
        _gradient_pipeline(optimizer, reduce_gradients, accumulate, accumulators, recompute, skip)
        with autocast(dtype):
            feeds, fetches, loss = model_fn()
        optimizer.minimize(loss)
        return feeds, fetches, update_flag(optimizer) if skip else None
    if dtype == "bfloat16":
        # no loss scaling: Paddle's defaults would build an unscale op without a scale
        optimizer = paddle.static.amp.decorate(optimizer, level="O1", dtype=dtype, init_loss_scaling=1.0,
                                               use_dynamic_loss_scaling=False)
        _gradient_pipeline(optimizer, reduce_gradients, accumulate, accumulators, recompute, skip)
        with autocast(dtype):
            feeds, fetches, loss = model_fn()
        # the update outside auto-cast, as for float16: ops built under it follow the O1 lists,
        # and an update op in them would get bfloat16 gradients for float32 weights
        optimizer.minimize(loss)
        return feeds, fetches, update_flag(optimizer) if skip else None
    optimizer = paddle.static.amp.decorate(optimizer, level="O1", dtype=dtype)
    _gradient_pipeline(optimizer, reduce_gradients, accumulate, accumulators, recompute, False)
    with autocast(dtype):
        feeds, fetches, loss = model_fn()
        scaler = paddle.amp.GradScaler(
            init_loss_scaling=scaling.init, incr_ratio=scaling.incr_ratio, decr_ratio=scaling.decr_ratio,
            incr_every_n_steps=scaling.incr_every_n_steps,
            decr_every_n_nan_or_inf=scaling.decr_every_n_nan_or_inf, use_dynamic_loss_scaling=True)
        scaled = scaler.scale(loss)
    scaler.minimize(optimizer, scaled)
    return feeds, fetches, update_flag(optimizer) if skip else None
