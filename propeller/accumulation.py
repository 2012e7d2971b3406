"""Gradient accumulation in the static program: one update from the gradients of k micro-batches.

Paddle's `GradientMergeOptimizer` is built for the legacy IR and cannot run under PIR, so the
runner builds two programs over the same scope:

- the micro-batch program: forward and backward of one micro-batch, its gradient (of the loss
  multiplied by the loss scale, under float16) added into a persistable accumulator per
  parameter (`<param>@GRAD_ACC`); no update;
- the update program, today's training program, run on the last micro-batch: its gradient is
  added to the accumulators and divided by the step's number of micro-batches before anything
  else sees it, so the all-reduce
  of data parallelism, loss scaling's overflow check and scale update, clipping, weight decay
  and the optimizer's update all run once, on the global batch's gradient; then the
  accumulators are set back to zero.

The global gradient is the mean, over micro-batches (and ranks), of each micro-batch's gradient
of its own mean loss: the semantics data parallelism already has across ranks, so k micro-batches
on one rank and k ranks of one micro-batch each train alike. An overflow in any micro-batch
makes the whole global step's gradient non-finite, so it is skipped as one step on every rank; so
does a non-finite loss, which poisons its micro-batch's gradient (`propeller.nonfinite`).
"""
from __future__ import annotations

import contextlib
from typing import Callable, List, Optional

ACCUMULATOR_SUFFIX = "@GRAD_ACC"


SCALE = "grad_accumulation_scale"  # 1 / the step's number of micro-batches, set before each update


def accumulate_in_backward(optimizer, k: int, accumulators: List) -> None:
    """Makes `optimizer.backward` return (param, (accumulator + grad) x `SCALE`), creating one
    zero-initialised persistable accumulator per parameter (appended to `accumulators`) and the
    scale (1 / k until the runner sets it: a step may have fewer micro-batches, as the last
    batch of a fine-tuning epoch)."""
    import paddle
    from paddle.pir.core import create_persistable_value
    backward = optimizer.backward

    def accumulated_backward(*args, **kwargs):
        scale = create_persistable_value(dtype="float32", shape=[1], name=SCALE,
                                         initializer=paddle.nn.initializer.Constant(1.0 / k))
        scale.stop_gradient = True
        out = []
        for param, grad in backward(*args, **kwargs):
            acc = create_persistable_value(dtype=grad.dtype, shape=grad.shape, name=param.name + ACCUMULATOR_SUFFIX,
                                           initializer=paddle.nn.initializer.Constant(0.0))
            accumulators.append(acc)
            out.append((param, (acc + grad) * scale))
        return out

    optimizer.backward = accumulated_backward


def reset(accumulators: List) -> None:
    """Ops that set the accumulators back to zero: append them after the update."""
    import paddle
    for acc in accumulators:
        paddle.assign(paddle.zeros_like(acc), output=acc)


def _persistable(name: str, shape, dtype):
    """The scope variable `name` (made by another program) as a value of the current program."""
    import paddle
    from paddle.pir.core import data
    value = data(name, shape, dtype, paddle.base.core.Place())
    value.persistable = True
    return value


def micro_batch_program(model_fn: Callable, accumulator_names: List[str], build_context: Callable = contextlib.nullcontext,
                        loss_scale: Optional[str] = None, recompute: bool = False):
    """(program, feeds, fetches) of one micro-batch's forward and backward, adding its gradients
    into the accumulators named `accumulator_names` (made by the update program).
    `build_context()`: the context the update program's forward was built in (mixed precision's
    `autocast`); `loss_scale`: the name of float16's loss-scale variable, which multiplies the loss
    as in the update program; `recompute`: the model's marked segments are recomputed in the backward (`propeller.recompute`).
    Build it under a fresh `unique_name.guard()`, as the update program was, so the
    parameters' generated names agree. Its startup program is never run: it initialises nothing
    the update program's startup has not."""
    import paddle

    from . import recompute as rc
    from .nonfinite import poison_gradient
    program = paddle.static.Program()
    with paddle.static.program_guard(program, paddle.static.Program()):
        with build_context():
            with rc.maybe(recompute, rc.forward_role):
                feeds, fetches, loss = model_fn()
            if loss_scale is not None:
                loss = loss * _persistable(loss_scale, [1], "float32")
            params = [p for p in program.global_block().all_parameters() if not p.stop_gradient]
            with rc.maybe(recompute, rc.backward_role):
                params_grads = poison_gradient(loss, paddle.static.append_backward(loss, parameter_list=params))
            if recompute:
                rc.apply(program)
        wanted = set(accumulator_names)
        found = {param.name + ACCUMULATOR_SUFFIX for param, _ in params_grads}
        if found != wanted:
            raise RuntimeError(f"the micro-batch program's gradients ({len(found)}) are not the update program's "
                               f"({len(wanted)}): {sorted(found ^ wanted)[:3]}")
        for param, grad in params_grads:
            acc = _persistable(param.name + ACCUMULATOR_SUFFIX, grad.shape, grad.dtype)
            paddle.assign(acc + grad, output=acc)
    return program, feeds, fetches
