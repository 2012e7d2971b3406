"""Activation recomputation in the static program, with Paddle's own PIR pass.

The model marks the ops to recompute (`paddle.distributed.fleet.recompute.recompute(layer, ...)`
while the program is built); the runner builds the forward under the forward op role and the
backward under the backward role, then applies the pass `auto_parallel_recompute_pir`, which
clones each marked segment's ops in front of the first backward op that needs them, so the
forward's activations of the segment are dead after it. Random draws are not cloned (`randint`
here, for the fused dropout's key and the seeded dropout of `ernie.kernels.cpu_kernels`): the
recomputed dropout applies the forward's mask.
"""
from __future__ import annotations

import contextlib

# ops whose outputs the recomputed segment reuses instead of computing them again
_KEEP = [{"main_ops": ["randint"], "pre_ops": [], "suf_ops": [], "num": -1}]


def _role(name: str):
    import paddle
    from paddle.base.framework import pir_op_role_guard
    role = getattr(paddle.base.core.op_proto_and_checker_maker.OpRole, name)
    return pir_op_role_guard(int(role))


def forward_role():
    """Ops built inside are the forward pass's."""
    return _role("Forward")


def backward_role():
    """Ops built inside are the backward pass's."""
    return _role("Backward")


def tag_backward(optimizer) -> None:
    """Builds `optimizer.backward`'s ops under the backward role."""
    backward = optimizer.backward

    def tagged(*args, **kwargs):
        with backward_role():
            return backward(*args, **kwargs)

    optimizer.backward = tagged


def apply(program) -> None:
    """Recomputes the program's marked segments in its backward pass."""
    import paddle
    from paddle.distributed.passes import PassContext, new_pass
    if not any(op.has_attr("fwd_recompute_id") for op in program.global_block().ops):
        raise RuntimeError("recompute is on, but the model marked no op for recomputation")
    new_pass("auto_parallel_recompute_pir", {"refined_ops_patterns": _KEEP}).apply(
        [program], [paddle.static.Program()], PassContext())
    # the pass leaves the insertion point in the backward pass: ops built next go at the end
    paddle.pir.set_insertion_point_to_block_end(program.global_block())


def maybe(enabled: bool, context):
    """`context()` when `enabled`, else nothing."""
    return context() if enabled else contextlib.nullcontext()
