"""The optimizer's update alone, on the parameters of a model shape (default: the tiny model):
gradient clipping by the global norm and AdamW with decoupled weight decay, in ms per update.

- this project's static program with the fused update (`ernie.kernels.cpu_adamw`: one op over
  every parameter; the global norm taken in the program as the pre-training step's finiteness
  check takes it),
- the same program with Paddle's own ops (`ClipGradByGlobalNorm`, an `adamw_` per parameter),
- PyTorch: `clip_grad_norm_` and `torch.optim.AdamW`, its multi-tensor (foreach) and its fused
  implementation.

The gradients are fixed tensors that every implementation reads in place (no feed, no backward
pass). The CPU model and its flags come first. Prints figures; asserts nothing.

    python benchmarks/bench_optimizer.py [--layers 4 --hidden 256 --vocab 18000]
"""
from __future__ import annotations

import ernie  # noqa: F401  (first: its CPU settings must precede Paddle's import)

# isort: split

import numpy as np
import paddle

from ernie.kernels.cpu_adamw import AdamW
from ernie.kernels.cpu_runtime import math_threads
from ernie.model.optimization import decays
from ernie_common.machine import cpu_line
from propeller.static_runner import static_mode

from common import shape_arguments, timed

LR, WD, BETA1, BETA2, EPS, CLIP = 1e-4, 0.01, 0.9, 0.98, 1e-6, 1.0


def parameter_shapes(layers: int, hidden: int, vocab: int):
    """(name, shape) of an ERNIE encoder's parameters, named as the model names them (`.b_0` and
    layer norms undecayed) with the masked-LM head's transform and output bias."""
    shapes = [("word_embedding", (vocab, hidden)), ("pos_embedding", (512, hidden)),
              ("sent_embedding", (4, hidden)), ("task_embedding", (16, hidden)),
              ("pre_encoder_layer_norm_scale", (hidden,)), ("pre_encoder_layer_norm_bias", (hidden,))]
    for i in range(layers):
        for part, (rows, cols) in (("query", (hidden, hidden)), ("key", (hidden, hidden)), ("value", (hidden, hidden)),
                                   ("output", (hidden, hidden)), ("ffn_0", (hidden, 4 * hidden)),
                                   ("ffn_1", (4 * hidden, hidden))):
            shapes += [(f"layer_{i}_{part}.w_0", (rows, cols)), (f"layer_{i}_{part}.b_0", (cols,))]
        for norm in ("post_att", "post_ffn"):
            shapes += [(f"layer_{i}_{norm}_layer_norm_scale", (hidden,)), (f"layer_{i}_{norm}_layer_norm_bias", (hidden,))]
    shapes += [("mask_lm_trans_fc.w_0", (hidden, hidden)), ("mask_lm_trans_fc.b_0", (hidden,)),
               ("mask_lm_out_fc.b_0", (vocab,))]
    return shapes


def paddle_update(shapes, optimizer_class):
    """A static program whose only ops are the update of `shapes` by fixed gradients."""
    with static_mode(), paddle.utils.unique_name.guard():
        paddle.seed(0)
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            pairs = []
            for name, shape in shapes:
                param = paddle.create_parameter(list(shape), "float32", name=name,
                                                default_initializer=paddle.nn.initializer.Normal(std=0.02))
                grad = paddle.create_parameter(list(shape), "float32", name=name + "@fixed_grad",
                                               default_initializer=paddle.nn.initializer.Normal(std=1e-3))
                grad.stop_gradient = True
                pairs.append((param, grad))
            optimizer = optimizer_class(learning_rate=LR, beta1=BETA1, beta2=BETA2, epsilon=EPS, weight_decay=WD,
                                        apply_decay_param_fun=decays, grad_clip=paddle.nn.ClipGradByGlobalNorm(CLIP))
            optimizer._apply_optimize(None, startup, pairs)
        executor = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            executor.run(startup)
    ops = [op.name() for op in main.global_block().ops if not op.name().startswith(("builtin.", "pd_op.data"))]

    def step():
        with static_mode(), paddle.static.scope_guard(scope):
            executor.run(main)
    return step, len(ops)


def torch_update(shapes, implementation: str):
    import torch
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(shape) * 0.02) for _, shape in shapes]
    grads = [torch.randn(shape) * 1e-3 for _, shape in shapes]
    decayed = [p for (name, _), p in zip(shapes, params) if decays(name)]
    others = [p for (name, _), p in zip(shapes, params) if not decays(name)]
    options = {"foreach": True} if implementation == "foreach" else {"fused": True}
    optimizer = torch.optim.AdamW([{"params": decayed, "weight_decay": WD}, {"params": others, "weight_decay": 0.0}],
                                  lr=LR, betas=(BETA1, BETA2), eps=EPS, **options)

    def step():
        for p, g in zip(params, grads):
            p.grad = g
        torch.nn.utils.clip_grad_norm_(params, CLIP, foreach=True)
        optimizer.step()
    return step


def main() -> None:
    parser = shape_arguments(__doc__)
    args = parser.parse_args()
    shapes = parameter_shapes(args.layers, args.hidden, args.vocab)
    count = sum(int(np.prod(s)) for _, s in shapes)
    print(cpu_line())
    print(f"{len(shapes)} parameters, {count / 1e6:.1f} M values; {args.warmup} warm-up updates, {args.steps} timed")
    fused, fused_ops = paddle_update(shapes, AdamW)
    own, own_ops = paddle_update(shapes, paddle.optimizer.AdamW)
    rows = [(f"static, fused update ({fused_ops} ops)", timed(fused, args.warmup, args.steps)),
            (f"static, Paddle's ops ({own_ops} ops)", timed(own, args.warmup, args.steps))]
    try:
        import torch
        torch.set_num_threads(math_threads())
        for implementation in ("foreach", "fused"):
            rows.append((f"PyTorch AdamW ({implementation})",
                         timed(torch_update(shapes, implementation), args.warmup, args.steps)))
    except ImportError:
        print("PyTorch is not installed: no peer")
    peer = min(t for name, t in rows if name.startswith("PyTorch")) if len(rows) > 2 else None
    if peer:
        print("ratio: the faster PyTorch update's time over this one's (above 1: faster than PyTorch)")
    for name, seconds in rows:
        ratio = f"  {peer / seconds:.2f}x" if peer else ""
        print(f"{name:<40} {seconds * 1000:8.2f} ms{ratio}")


if __name__ == "__main__":
    main()
