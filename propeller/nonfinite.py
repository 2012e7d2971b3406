"""A step whose loss or gradient is not finite is skipped on every rank, in every precision.

float16's dynamic loss scaling exists to survive such steps: Paddle's decorated optimizer checks
the gradients after the backward pass and, where one holds an inf or nan, hands the flag to
Adam's update kernel (`SkipUpdate`), which then leaves the parameters, both moments and the
powers of beta untouched. This module gives float32 and bfloat16 the same skip, and makes a
non-finite *loss* count as well as a non-finite gradient:

- `poison_gradient`: a micro-batch whose loss is not finite adds a nan to one of its gradients
  (and 0.0, which changes nothing, otherwise). The loss of a mean can be inf while its gradient
  is finite (a softmax that underflowed: the cross-entropy is inf, its gradient softmax - onehot
  is not), so the loss is checked itself. The poisoned gradient then travels where every
  gradient goes: into the accumulators of the other micro-batches (`propeller.accumulation`)
  and through the ranks' all-reduce, so every rank sees it.
- `skip_on_nonfinite`: after the reduction, where the global gradient is identical on every
  rank, one check over all gradients; its flag goes to Adam's `SkipUpdate` as float16's does,
  so every rank skips the same steps without another collective. The runner fetches the flag
  (`skipped`) and the learner counts the skipped steps (`propeller.learner`).

Only the Adam family's update kernels take the flag; `supports_skip` tells. With another
optimizer the runner reports no skip and the learner stops at a non-finite loss.
"""
from __future__ import annotations

from typing import List, Tuple

SKIPPED = "skipped"  # the fetch: whether the step's update was skipped
# The optimizer's auxiliary variable holding the sum of the gradients' squared norms that
# `skip_on_nonfinite` took (with the optimizer's own `squared_norm(grads)` where it has one): an
# update that clips by the global norm can reuse it.
GRAD_SQUARED_NORM = "grad_squared_norm"


def real_optimizer(optimizer):
    """The optimizer that runs the update, inside Paddle's mixed-precision decorator (and fleet's)."""
    while True:
        inner = getattr(optimizer, "_optimizer", None) or getattr(optimizer, "inner_opt", None)
        if inner is None:
            return optimizer
        optimizer = inner


def supports_skip(optimizer) -> bool:
    import paddle
    return isinstance(real_optimizer(optimizer), (paddle.optimizer.Adam, paddle.optimizer.AdamW))


def poison_gradient(loss, params_grads: List[Tuple]) -> List[Tuple]:
    """`params_grads` with a nan added to the first gradient where `loss` is not finite (static
    program ops). Exact otherwise: g + 0.0 == g."""
    import paddle
    if not params_grads:
        return params_grads
    bad = paddle.logical_not(paddle.isfinite(loss)).any()
    param, grad = params_grads[0]
    poison = paddle.where(bad, paddle.full([], float("nan"), grad.dtype), paddle.full([], 0.0, grad.dtype))
    return [(param, grad + poison)] + list(params_grads[1:])


def poison_in_backward(optimizer) -> None:
    """Makes `optimizer.backward(loss, ...)` poison its gradients with the loss (`poison_gradient`);
    wrap it before accumulation and the reduction, so both carry the poison on."""
    backward = optimizer.backward

    def poisoned_backward(loss, *args, **kwargs):
        return poison_gradient(loss, backward(loss, *args, **kwargs))

    optimizer.backward = poisoned_backward


def skip_on_nonfinite(optimizer) -> None:
    """Makes `optimizer.backward` end with one finiteness check of all its gradients, whose flag
    is given to the Adam-family update as its `SkipUpdate` (`update_flag` reads it back, for the
    runner to fetch). Wrap it last: it must see the gradients the update sees."""
    import paddle
    backward = optimizer.backward
    updater = real_optimizer(optimizer)

    def checked_backward(*args, **kwargs):
        params_grads = backward(*args, **kwargs)
        # One read of every gradient: the sum of their squares is finite exactly when they all are
        # (or a square overflows, beyond 1.8e19 in float32: no sane update either). The global
        # norm clipping takes is these same squares; Paddle's check_finite_and_unscale_ would
        # read each gradient and write it back, three times the time on the tiny model's CPU step.
        grads = [g for _, g in params_grads]
        own = getattr(updater, "squared_norm", None)  # an optimizer's own way to take it (one op)
        squares = own(grads) if own is not None else squared_norm(grads)
        found_inf = paddle.logical_not(paddle.isfinite(squares))
        # Adam's kernels read the flag on the CPU, as Paddle's decorator copies it there
        updater._set_auxiliary_var("found_inf", paddle.tensor.creation._memcpy(found_inf, paddle.CPUPlace()))
        updater._set_auxiliary_var(GRAD_SQUARED_NORM, squares)
        return params_grads

    optimizer.backward = checked_backward


def squared_norm(grads):
    """The sum of the squares of every gradient, as static program ops: Paddle's squared_l2_norm
    of each, added."""
    import paddle
    return paddle.add_n([paddle._C_ops.squared_l2_norm(g) for g in grads])


def update_flag(optimizer):
    """The skip flag the optimizer's update was given (after `minimize`): `skip_on_nonfinite`'s,
    or float16's decorated optimizer's overflow flag."""
    return real_optimizer(optimizer)._get_auxiliary_var("found_inf")
