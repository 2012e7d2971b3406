"""Encoder training-step speed: this project's static program vs its dygraph (each through the
training engine's runner, as pre-training uses them) vs Hugging Face's PyTorch ErnieModel, in one
process, on the same shapes and thread count.

A step is forward + backward + AdamW update of the encoder alone, with dropout on, under the loss
mean(sequence_output^2). Prints tokens/s for each and the ratios; asserts nothing.

    python benchmarks/bench_encoder.py [--layers 4 --hidden 256 --heads 4 --seq-len 128 --batch 16]
"""
from __future__ import annotations

import ernie  # noqa: F401  (first: its CPU settings must precede Paddle's import)

# isort: split

import paddle

from ernie.kernels.cpu_kernels import training_program_pass
from ernie.kernels.cpu_runtime import math_threads
from ernie.model.modeling import ErnieModel
from ernie.model.optimization import adamw
from ernie.model.static_graph import encoder_feeds
from ernie_common.machine import cpu_line
from propeller.dygraph_runner import DygraphRunner
from propeller.static_runner import StaticRunner

from common import config_from, encoder_batch, gemm_gflops, hf_ernie_config, shape_arguments, timed, torch_step_time

THREADS = math_threads()


class EncoderLoss(paddle.nn.Layer):
    """The encoder under the loss mean(sequence_output^2), taking a feed dict like the runners."""

    def __init__(self, config):
        super().__init__()
        self.ernie = ErnieModel(config)

    def forward(self, feeds):
        seq, _ = self.ernie(**feeds)
        return {"loss": paddle.mean(seq * seq)}


def bench_static(config, feeds, warmup, steps):
    def model_fn():
        model = EncoderLoss(config)
        inputs = encoder_feeds(config)
        out = model(inputs)
        return inputs, out, out["loss"]

    runner = StaticRunner(model_fn, lambda lr: adamw(lr), seed=1, program_pass=training_program_pass())
    counter = iter(range(10 ** 9))
    return timed(lambda: runner.step(next(counter), feeds, 1e-4), warmup, steps)


def bench_dygraph(config, feeds, warmup, steps):
    runner = DygraphRunner(lambda: EncoderLoss(config), lambda lr, params: adamw(lr, parameters=params), seed=1)
    counter = iter(range(10 ** 9))
    return timed(lambda: runner.step(next(counter), feeds, 1e-4), warmup, steps)


def bench_torch(config, feeds, warmup, steps):
    import torch
    import transformers

    torch.set_num_threads(THREADS)
    model = transformers.ErnieModel(hf_ernie_config(config), add_pooling_layer=True)
    t = {k: torch.tensor(v) for k, v in feeds.items()}

    def loss():
        out = model(input_ids=t["src_ids"], token_type_ids=t["sent_ids"], position_ids=t["pos_ids"],
                    attention_mask=t["input_mask"], task_type_ids=t["task_ids"])
        return (out.last_hidden_state ** 2).mean()

    return torch_step_time(model, loss, warmup, steps)


def main():
    parser = shape_arguments(__doc__)
    parser.add_argument("--skip-torch", action="store_true")
    args = parser.parse_args()
    config = config_from(args)
    feeds = encoder_batch(config, args.batch, args.seq_len, task_id=1)
    tokens = args.batch * args.seq_len
    print(cpu_line())
    print(f"encoder {args.layers}x{args.hidden}/{args.heads} heads, batch {args.batch} x seq "
          f"{args.seq_len}, vocab {args.vocab}, {THREADS} threads, fwd+bwd+AdamW, "
          f"{args.steps} timed steps after {args.warmup} warm-up")
    results = {"paddle static": bench_static(config, feeds, args.warmup, args.steps),
               "paddle dygraph": bench_dygraph(config, feeds, args.warmup, args.steps)}
    if not args.skip_torch:
        results["pytorch (HF ErnieModel)"] = bench_torch(config, feeds, args.warmup, args.steps)
    reference = results.get("pytorch (HF ErnieModel)")
    for name, seconds in results.items():
        ratio = f"  {reference / seconds:5.2f}x PyTorch" if reference else ""
        print(f"{name:26s} {seconds * 1000:8.1f} ms/step  {tokens / seconds:9.0f} tokens/s{ratio}")
    if not args.skip_torch:
        gemm = gemm_gflops()
        print(f"fp32 GEMM 2048x1024x1024, GFLOP/s: {', '.join(f'{k} {v:.0f}' for k, v in gemm.items())} "
              f"(the ceiling each one's steps run under; ernie: the fused training matmul)")


if __name__ == "__main__":
    main()
