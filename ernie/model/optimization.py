"""Learning-rate schedules and the AdamW optimizer of ERNIE pre-training and fine-tuning. The
schedules are plain functions (no Paddle), shared with the PyTorch reference scripts."""
from __future__ import annotations


def noam(peak: float, warmup: int, step: int) -> float:
    """The original ERNIE noam decay, `noam_decay(d_model=1/(warmup*peak^2), warmup)`: it rises
    linearly to exactly `peak` at `step == warmup`, then falls as peak*sqrt(warmup/step)."""
    step = max(step, 1)
    d_model = 1.0 / (warmup * peak ** 2)
    return d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)


def linear_warmup_decay(peak: float, warmup: int, total: int, step: int) -> float:
    """Linear warm-up to `peak` over `warmup` steps, then linear decay to 0 at `total`."""
    step = max(step, 1)
    if step <= warmup:
        return peak * step / max(warmup, 1)
    return peak * max(0.0, (total - step) / max(total - warmup, 1))


def linear_warmup_constant(peak: float, warmup: int, step: int) -> float:
    """Linear warm-up to `peak` over `warmup` steps, then `peak`: a run's rate at a step does not
    depend on how long the run is, so models saved along the way are what a run ending there
    would have trained (before any decay; Hägele et al. 2024 decay briefly from such points)."""
    return peak * min(max(step, 1), warmup) / max(warmup, 1)


def task_learning_rate(optimization, iterations: int, task_step: int) -> float:
    """A pre-training task's learning rate at its `task_step`-th step of `iterations`, from the
    config's `optimization` settings (`ernie.pretrain.config.Optimization`): noam, linear warm-up
    and decay to 0 at its last step, or linear warm-up and constant; warm-up over
    `warmup_proportion` of its iterations where that is set, else `warmup_steps`."""
    warmup = optimization.warmup_steps if optimization.warmup_proportion is None else \
        max(1, round(optimization.warmup_proportion * iterations))
    if optimization.lr_schedule == "noam":
        return noam(optimization.learning_rate, warmup, task_step)
    if optimization.lr_schedule == "constant":
        return linear_warmup_constant(optimization.learning_rate, warmup, task_step)
    return linear_warmup_decay(optimization.learning_rate, warmup, iterations, task_step)


def decays(param_name: str) -> bool:
    """Decoupled weight decay skips layer-norm parameters and biases, as the original does."""
    return not (param_name.endswith(".b_0") or "layer_norm" in param_name or param_name.endswith("_bias"))


def adamw(learning_rate, weight_decay: float = 0.01, beta1: float = 0.9, beta2: float = 0.98,
          epsilon: float = 1e-6, clip_norm: float = 1.0, parameters=None):
    """`parameters` is for dygraph; a static program's optimizer finds them itself. On the CPU a
    static program's update is one fused op (`ernie.kernels.cpu_adamw`)."""
    import paddle

    from ernie.kernels.cpu_adamw import AdamW
    return AdamW(learning_rate=learning_rate, beta1=beta1, beta2=beta2, epsilon=epsilon,
                 weight_decay=weight_decay, apply_decay_param_fun=decays,
                 grad_clip=paddle.nn.ClipGradByGlobalNorm(clip_norm), parameters=parameters)

