"""AdamW whose update, in a static program on the CPU, is one fused op over every parameter
(`ernie/kernels/csrc/cpu_adamw.cc`): the clip by the global norm, the decoupled weight decay,
the moments and the skip of a non-finite step in one pass.

Why: Paddle builds the update of a static program as a squared norm and a multiply per gradient
(`ClipGradByGlobalNorm`) and an `adamw_` per parameter, and `propeller.nonfinite` has already
taken every gradient's squared norm for its finiteness check: every gradient read three times,
mostly on one thread. The fused op reads the squared norm the check took, and reads and writes
each element once, on every thread; the squared norm itself is one threaded op too
(`squared_norm`, which the check uses). benchmarks/bench_optimizer.py, a Xeon with AMX, 2 cores:
the tiny model's 8.0 M values 16.0 ms against Paddle's 36.8 ms (PyTorch's fused AdamW 12.1 ms);
the base model's 110 M values 132.2 ms against 337.4 ms (PyTorch 135.8 ms). The same op on the
tiny model's values takes 4 ms called directly and 10 ms in the static program: what the
executor adds around an in-place op is still to be found.

Everything else is Paddle's `AdamW`: its accumulators (the same names, so checkpoints move
between the two), its learning rate, its dygraph path; and the fused op runs only where it
computes the same update (`_fuses`), Paddle's ops everywhere else.
"""
from __future__ import annotations

import paddle

from propeller import nonfinite

from . import cpu_kernels


class AdamW(paddle.optimizer.AdamW):
    """`paddle.optimizer.AdamW` (with `grad_clip` a `ClipGradByGlobalNorm` or None) whose static
    CPU update is the fused op."""

    _fused = False

    def _fuses(self, params_grads) -> bool:
        """Whether this update can be the fused op: a static program on the CPU with the fused
        kernels, float32 parameters at the optimizer's learning rate, all clipped, none with a
        regularizer of its own, and no option of Paddle's AdamW that the op does not have."""
        if not paddle.framework.in_pir_mode() or not isinstance(params_grads, list):
            return False
        if self._lr_ratio is not None or self._amsgrad or self._multi_precision or self._lazy_mode:
            return False
        if not isinstance(self._weight_decay, float) or not isinstance(self._beta1, float) \
                or not isinstance(self._beta2, float):
            return False
        if self._grad_clip is not None and type(self._grad_clip) is not paddle.nn.ClipGradByGlobalNorm:
            return False
        for param, grad in params_grads:
            if param.dtype != paddle.float32 or (grad is not None and grad.dtype != paddle.float32):
                return False
            if getattr(param, "regularizer", None) is not None or not getattr(param, "need_clip", True):
                return False  # its own regularizer, or left out of the clip (ParamAttr(need_clip=False))
            if getattr(param, "optimize_attr", {}).get("learning_rate", 1.0) != 1.0:
                return False
        return cpu_kernels.enabled()

    def squared_norm(self, grads):
        """The sum of the squares of every gradient (the squared global norm), as a static program
        op: one threaded pass over all of them where the fused kernels run on float32 gradients,
        Paddle's squared_l2_norm per gradient and their sum elsewhere."""
        if paddle.framework.in_pir_mode() and all(g.dtype == paddle.float32 for g in grads) and cpu_kernels.enabled():
            return cpu_kernels.run_op("ernie_squared_norm", list(grads))[0]
        return nonfinite.squared_norm(grads)

    def _apply_optimize(self, loss, startup_program, params_grads, param_group_idx=0):
        self._fused = self._fuses(params_grads)
        if not self._fused:
            return super()._apply_optimize(loss, startup_program, params_grads, param_group_idx)
        clip, self._grad_clip = self._grad_clip, None  # the fused op clips
        self._clip_norm = float(clip.clip_norm) if clip is not None else 0.0
        try:
            return super()._apply_optimize(loss, startup_program, params_grads, param_group_idx)
        finally:
            self._grad_clip = clip

    def _pir_create_optimization_pass(self, parameters_and_grads, param_group_idx=0):
        if not self._fused:
            return super()._pir_create_optimization_pass(parameters_and_grads, param_group_idx)
        pairs = [(p, g) for p, g in parameters_and_grads if g is not None and not p.stop_gradient]
        self._create_global_learning_rate()
        self._create_accumulators(paddle.static.default_main_program().global_block(), [p for p, _ in pairs])
        if not pairs:
            return []

        def state(name):
            return [self._get_accumulator_master(name, p) for p, _ in pairs]

        grads = [g for _, g in pairs]
        squared_norm = self._get_auxiliary_var(nonfinite.GRAD_SQUARED_NORM)
        if squared_norm is None:
            squared_norm = self.squared_norm(grads)
        decay = [self._weight_decay if self._apply_decay_param_fun is None or self._apply_decay_param_fun(p.name)
                 else 0.0 for p, _ in pairs]
        cpu_kernels.run_op("ernie_adamw_", [p for p, _ in pairs], grads, state(self._moment1_acc_str),
                           state(self._moment2_acc_str), state(self._beta1_pow_acc_str),
                           state(self._beta2_pow_acc_str), self._global_learning_rate(), squared_norm,
                           float(self._beta1), float(self._beta2), float(self._epsilon), self._clip_norm, decay)
        return []
